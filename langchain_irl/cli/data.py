"""`langchain-irl data DATASET`: convert a public dataset to the project's JSONL formats."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from langchain_irl.cli.options import (
    Formatter,
    add_command,
    check_outputs,
    debug_option,
    positive,
    share,
)
from langchain_irl.data.converters import ALPACA_BASE_MODELS, ALPACA_REFERENCE


def add_parser(commands: Any) -> None:
    data = add_command(commands, "data", "convert a public dataset to the project's JSONL formats")
    datasets = data.add_subparsers(dest="dataset", required=True, metavar="DATASET")
    captions = datasets.add_parser(
        "caption-contest",
        help="New Yorker caption contest -> demos.jsonl (top-rated) + samples.jsonl (the crowd)",
        formatter_class=Formatter,
    )
    debug_option(captions)
    captions.add_argument("file", type=Path, help="dev.jsonl or train.jsonl.gz")
    captions.add_argument("--out-dir", type=Path, required=True, help="where the files go")
    captions.add_argument("--top", type=positive, default=30, help="demonstrations per contest")
    captions.add_argument(
        "--sample-chunks",
        nargs="+",
        default=["middle", "bottom", "sample"],
        help="which blocks of entries are policy samples",
    )
    captions.add_argument(
        "--contests", type=int, nargs="+", help="only these contests (default: all in the file)"
    )
    captions.add_argument(
        "--exclude-contests", type=int, nargs="*", default=[], help="contests to leave out"
    )
    captions.set_defaults(run=run_caption_contest)
    alpaca = datasets.add_parser(
        "alpaca-eval",
        help="AlpacaEval answers with judge scores -> demos, samples, judged and adversarial "
        "JSONL, with held-out instructions in OUT_DIR/heldout",
        formatter_class=Formatter,
    )
    debug_option(alpaca)
    alpaca.add_argument("file", type=Path, help="dev.jsonl.gz (answers of 52 models, judged)")
    alpaca.add_argument("--out-dir", type=Path, required=True, help="where the files go")
    alpaca.add_argument(
        "--demo-models",
        nargs="+",
        default=[ALPACA_REFERENCE],
        help="whose answers are the demonstrations (default: the judge's reference answers)",
    )
    alpaca.add_argument(
        "--base-models",
        nargs="+",
        default=list(ALPACA_BASE_MODELS),
        help="whose answers are the policy samples (default: a mix of weak and mid models)",
    )
    alpaca.add_argument(
        "--holdout-share", type=share, default=0.2, help="instructions kept for evaluation"
    )
    alpaca.add_argument("--seed", type=int, default=0, help="seed of the held-out draw")
    alpaca.add_argument(
        "--holdout-block",
        type=int,
        default=0,
        help="which share-sized block of the seeded order is held out; blocks are disjoint, so "
        "with a share of 0.2, blocks 0-4 are the five folds of a cross-fit",
    )
    alpaca.set_defaults(run=run_alpaca_eval)
    hh = datasets.add_parser(
        "hh-rlhf", help="Anthropic HH-RLHF -> preference pairs JSONL", formatter_class=Formatter
    )
    debug_option(hh)
    hh.add_argument("file", type=Path, help="an HH-RLHF JSONL(.gz) file")
    hh.add_argument("--out", type=Path, required=True, help="pairs JSONL to write")
    hh.set_defaults(run=run_hh_rlhf)


def run_caption_contest(args: argparse.Namespace) -> None:
    from langchain_irl.data.converters import caption_contest
    from langchain_irl.data.jsonl import write_jsonl

    check_outputs(folders=[args.out_dir])
    demos, samples = caption_contest(
        args.file,
        top=args.top,
        sample_chunks=args.sample_chunks,
        contests=args.contests,
        exclude=args.exclude_contests,
    )
    if not (demos or samples):
        _nothing_to_convert(
            args.file, "caption contests", bool(args.contests or args.exclude_contests)
        )
    for name, records in (("demos.jsonl", demos), ("samples.jsonl", samples)):
        count = write_jsonl(args.out_dir / name, (r.to_json() for r in records))
        print(f"wrote {count} records to {args.out_dir / name}")


def run_alpaca_eval(args: argparse.Namespace) -> None:
    from langchain_irl.data.converters import alpaca_eval, held_out, read_alpaca_eval
    from langchain_irl.data.jsonl import write_jsonl

    check_outputs(folders=[args.out_dir])
    instructions = [record["instruction"] for record in read_alpaca_eval(args.file)]
    if not instructions:
        _nothing_to_convert(args.file, "AlpacaEval records")
    heldout = held_out(instructions, args.holdout_share, args.seed, args.holdout_block)
    parts = {
        args.out_dir: set(instructions) - heldout,
        args.out_dir / "heldout": heldout,
    }
    for folder, kept in parts.items():
        if not kept:
            continue
        split = alpaca_eval(
            args.file,
            demo_models=args.demo_models,
            base_models=args.base_models,
            instructions=kept,
        )
        files = {
            "demos.jsonl": split.demos,
            "samples.jsonl": split.samples,
            "judged.jsonl": split.judged,
        }
        files |= {f"adversarial-{name}.jsonl": a for name, a in split.adversarial.items()}
        for name, records in files.items():
            count = write_jsonl(folder / name, (r.to_json() for r in records))
            print(f"wrote {count} records to {folder / name}")


def run_hh_rlhf(args: argparse.Namespace) -> None:
    from langchain_irl.data.converters import hh_rlhf
    from langchain_irl.data.jsonl import write_jsonl

    check_outputs(files=[args.out])
    pairs = hh_rlhf(args.file)
    if not pairs:
        _nothing_to_convert(args.file, "HH-RLHF records")
    count = write_jsonl(args.out, (pair.to_json() for pair in pairs))
    print(f"wrote {count} pairs to {args.out}")


def _nothing_to_convert(path: Path, what: str, filtered: bool = False) -> None:
    from langchain_irl.data.jsonl import DataFileError

    chosen = " left after --contests/--exclude-contests" if filtered else ""
    raise DataFileError(f"{path}: no {what}{chosen}; nothing written")
