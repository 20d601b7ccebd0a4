"""`langchain-irl collect`: k samples of the base model for every demonstration input."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from langchain_irl.cli.options import (
    add_command,
    check_outputs,
    positive,
    sampler_factory,
    sampler_options,
)


def add_parser(commands: Any) -> None:
    collect = add_command(
        commands, "collect", "sample the base model k times for every demonstration input"
    )
    collect.add_argument("--demos", type=Path, required=True, help="demonstrations JSONL")
    collect.add_argument("--out", type=Path, required=True, help="samples JSONL (append-only)")
    collect.add_argument("--k", type=positive, default=8, help="samples per input")
    sampler_options(collect)
    collect.add_argument(
        "--concurrency", type=positive, default=8, help="requests (and inputs) in flight"
    )
    collect.add_argument("--skip-invalid", action="store_true", help="skip malformed demo lines")
    collect.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from langchain_irl.data.collect import CollectReport, close_sampler, collect
    from langchain_irl.data.formats import read_examples

    check_outputs(files=[args.out])
    demos = read_examples(args.demos, skip_invalid=args.skip_invalid)
    if not demos:
        raise ValueError(f"{args.demos}: no demonstrations to collect samples for")
    sampler = sampler_factory(args)()

    async def collect_and_close() -> CollectReport:
        try:
            inputs = [demo.input for demo in demos]
            return await collect(inputs, args.k, args.out, sampler, concurrency=args.concurrency)
        finally:
            await close_sampler(sampler)

    report = asyncio.run(collect_and_close())
    print(
        f"{report.inputs} inputs: {report.already_cached} samples were already in {args.out}, "
        f"{report.collected} collected"
    )
    if report.failed_inputs:
        print(f"{len(report.failed_inputs)} inputs failed; run again to resume", file=sys.stderr)
        return 1
    return 0
