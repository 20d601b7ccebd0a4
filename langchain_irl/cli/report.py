"""`langchain-irl report`: one static HTML page showing what a reward model learned."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from langchain_irl.cli.options import (
    add_command,
    check_outputs,
    example_options,
    load_examples,
    model_argument,
)


def add_parser(commands: Any) -> None:
    report = add_command(
        commands,
        "report",
        "an HTML page of what a reward learned: card, plots, attributions, preferences, probes",
    )
    model_argument(report)
    report.add_argument("--out", type=Path, required=True, help="folder for index.html and plots")
    example_options(report, "held-out ")
    report.add_argument(
        "--attributed", type=int, default=40, help="outputs attributed for the phrase table"
    )
    report.add_argument("--probed", type=int, default=200, help="outputs the edit probes edit")
    report.add_argument(
        "--screenshot",
        type=Path,
        help="also save the whole page as a PNG, as headless Chromium shows it at 1280 pixels "
        "wide (needs Chromium and the websockets package)",
    )
    report.add_argument("--skip-invalid", action="store_true", help="skip malformed lines")
    report.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from langchain_irl.evaluation.html_report import write_report
    from langchain_irl.reward_model.model import RewardModel

    check_outputs(files=[args.screenshot], folders=[args.out])
    demos = samples = None
    if args.demos or args.samples or args.pairs:
        demos, samples = load_examples(args)
    model = RewardModel.load(args.model)
    page = write_report(
        model, args.out, demos, samples, attributed=args.attributed, probed=args.probed
    )
    print(f"wrote {page} (open it in a browser; the plots lie beside it)")
    if args.screenshot:
        from langchain_irl.testing.browser import chromium

        with chromium(width=1280) as browser:
            browser.open(page)
            if browser.errors():
                raise RuntimeError(f"{page}: the browser reported {browser.errors()}")
            args.screenshot.write_bytes(browser.screenshot())
        print(f"wrote {args.screenshot}")
