"""`langchain-irl eval`: metrics, plots and suspicious demonstrations of a model on data."""

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
    evaluate = add_command(
        commands, "eval", "metrics, plots and suspicious demonstrations of a model on data"
    )
    model_argument(evaluate)
    example_options(evaluate)
    evaluate.add_argument(
        "--adversarial",
        type=Path,
        nargs="+",
        default=[],
        help="answers built to game a judge (one JSONL per kind): how often each ranks above "
        "the median policy sample of its input",
    )
    evaluate.add_argument(
        "--record",
        metavar="NAME",
        help="write the metrics into the model folder's card, under evaluations[NAME]",
    )
    evaluate.add_argument("--out", type=Path, default=Path("out/eval"), help="folder for PNG plots")
    evaluate.add_argument(
        "--show-suspicious", type=int, default=10, help="how many suspicious demos to print"
    )
    evaluate.add_argument("--skip-invalid", action="store_true", help="skip malformed lines")
    evaluate.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from langchain_irl.data.formats import read_examples
    from langchain_irl.data.jsonl import DataFileError
    from langchain_irl.evaluation.report import evaluate
    from langchain_irl.reward_model.card import record_evaluation
    from langchain_irl.reward_model.model import RewardModel

    check_outputs(folders=[args.out])
    demos, samples = load_examples(args)
    adversarial = {}
    for path in args.adversarial:  # adversarial-NullModel.jsonl -> metric adversarial_NullModel
        examples = read_examples(path)
        if not examples:
            raise DataFileError(f"{path}: no records")
        adversarial[path.name.split(".")[0].removeprefix("adversarial-")] = examples
    model = RewardModel.load(args.model)
    report = evaluate(model, demos, samples, plots_dir=args.out, adversarial=adversarial)
    print(f"{model.name} on {len(demos)} demonstrations and {len(samples)} policy samples:")
    for key, value in sorted(report.metrics.items()):
        print(f"  {key:>24}: {value:.4f}")
    for path in report.plots:
        print(f"plot: {path}")
    print(f"{len(report.suspicious)} demonstrations score below most of their own policy samples")
    for demo in report.suspicious[: args.show_suspicious]:
        print(f"  beaten by {demo.beaten_by:4.0%}  reward {demo.reward:+.2f}  {demo.output[:90]!r}")
    if args.record:
        record_evaluation(model.folder, args.record, report.metrics)
        print(f"recorded as evaluations[{args.record!r}] in {model.folder / 'card.json'}")
