"""`langchain-irl best-of-n`: n samples per prompt, ranked by a reward model, written as SFT
records (the best) and DPO pairs (best vs worst)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, get_args

from langchain_irl.cli.options import (
    actor_cpus,
    add_command,
    batch_options,
    check_outputs,
    positive,
    read_rows,
    run_job,
    sampler_factory,
    sampler_options,
)
from langchain_irl.engine.selection import Selection


def add_parser(commands: Any) -> None:
    best_of_n = add_command(
        commands,
        "best-of-n",
        "sample n answers per prompt, keep the best (SFT records) and best vs worst (DPO pairs)",
    )
    best_of_n.add_argument("--input", type=Path, required=True, help="JSONL rows {'input': ...}")
    best_of_n.add_argument("--sft", type=Path, required=True, help="prompt/completion JSONL")
    best_of_n.add_argument("--pairs", type=Path, required=True, help="prompt/chosen/rejected JSONL")
    best_of_n.add_argument("--reward-model", required=True, help="a bundled name or a folder")
    best_of_n.add_argument("--n", type=positive, default=8, help="samples per prompt")
    best_of_n.add_argument(
        "--margin", type=float, default=0.0, help="least reward margin of a kept pair"
    )
    best_of_n.add_argument(
        "--selection",
        choices=[rule for rule in get_args(Selection) if rule != "softmax"],  # reproducible
        default="argmax",
        help="how the kept sample is picked: conservative subtracts --risk-weight times the "
        "spread of the reward's ensemble members",
    )
    best_of_n.add_argument(
        "--risk-weight", type=float, default=1.0, help="with --selection conservative"
    )
    sampler_options(best_of_n)
    best_of_n.add_argument(
        "--concurrency", type=positive, default=8, help="requests in flight (per process)"
    )
    batch_options(best_of_n, batch_size=16)
    best_of_n.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    import functools

    from langchain_irl.batch import BestOfNRecords
    from langchain_irl.batch.best_of_n import pair_record, sft_record
    from langchain_irl.data.jsonl import write_jsonl

    if args.n < 2:
        raise ValueError(f"best-of-n needs --n of at least 2, got {args.n}")
    check_outputs(files=[args.sft, args.pairs])
    rows = read_rows(args.input, ("input",), "prompts")
    factory = sampler_factory(args)
    choice = {"selection": args.selection, "risk_weight": args.risk_weight}
    job = functools.partial(
        BestOfNRecords, factory, args.reward_model, args.n, concurrency=args.concurrency, **choice
    )

    def ray_job(dataset: Any) -> Any:
        from langchain_irl.ray import best_of_n_dataset

        return best_of_n_dataset(
            dataset,
            factory,
            args.reward_model,
            args.n,
            actors=args.actors,
            batch_size=args.batch_size,
            concurrency=args.concurrency,
            num_cpus=actor_cpus(args.actors),
            **choice,
        )

    results = list(run_job(args, job, ray_job, rows, "best-of-n"))
    sft = [r for r in map(sft_record, results) if r is not None]
    if results and not sft:  # nothing to write: say why, and fail, as collect does
        raise RuntimeError(f"every prompt failed; the first: {results[0].get('error')}")
    pairs = [r for r in (pair_record(row, args.margin) for row in results) if r is not None]
    write_jsonl(args.sft, sft)
    write_jsonl(args.pairs, pairs)
    failed = len(results) - len(sft)
    print(
        f"{len(results)} prompts: {len(sft)} SFT records to {args.sft}, {len(pairs)} pairs with "
        f"a margin of at least {args.margin} to {args.pairs}"
        + (f"; {failed} prompts got no samples" if failed else "")
    )
