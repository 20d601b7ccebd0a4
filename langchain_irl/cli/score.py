"""`langchain-irl score`: rank candidates for one prompt, or score every row of a JSONL file."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from langchain_irl.cli.options import (
    actor_cpus,
    add_command,
    batch_options,
    check_outputs,
    model_argument,
    read_rows,
    run_job,
)


def add_parser(commands: Any) -> None:
    score = add_command(
        commands,
        "score",
        "score candidate outputs for a prompt, or every row of a JSONL file (--input, --out)",
    )
    model_argument(score)
    score.add_argument("--prompt", help="the input the candidates answer")
    score.add_argument("candidates", nargs="*", help="candidate outputs")
    score.add_argument(
        "--explain", action="store_true", help="percentile and the nearest demonstrations"
    )
    score.add_argument(
        "--attribute",
        action="store_true",
        help="each candidate's words highlighted by what they add to its reward (green raises "
        "it, red lowers it; [+0.12 word] marks when not a terminal), and the prompt words that "
        "matter most",
    )
    score.add_argument(
        "--input", type=Path, help="JSONL rows {'input': prompt, 'output': candidate, ...}"
    )
    score.add_argument("--out", type=Path, help="the rows with 'reward' (and 'percentile')")
    batch_options(score, batch_size=256)
    score.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from langchain_irl.reward_model.model import RewardModel

    if args.input or args.out:
        _score_file(args)
        return
    if not args.prompt or not args.candidates:
        raise ValueError("give --prompt and candidates, or --input FILE and --out FILE")
    model = RewardModel.load(args.model)
    scores = model.score(args.prompt, args.candidates)
    calibrated = model.card.calibration is not None
    for index in scores.argsort()[::-1]:
        percentile = f"  p{model.percentile(float(scores[index])):5.1f}" if calibrated else ""
        print(f"{scores[index]:+8.3f}{percentile}  {args.candidates[index]}")
        if args.explain:
            explanation = model.explain(args.prompt, args.candidates[index])
            print("    " + str(explanation).replace("\n", "\n    "))
        if args.attribute:
            _print_attribution(model, args.prompt, args.candidates[index])


def _print_attribution(model: Any, prompt: str, candidate: str) -> None:
    color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    words = model.attribute(prompt, candidate)
    print(f"    words: {words.highlighted(color=color)}")
    prompt_words = model.attribute(prompt, candidate, side="prompt").top(5)
    print("    prompt: " + ", ".join(f"{word!r} {value:+.3f}" for word, value in prompt_words))


def _score_file(args: argparse.Namespace) -> None:
    import functools

    from langchain_irl.batch import BatchScorer
    from langchain_irl.data.jsonl import write_jsonl

    if not (args.input and args.out) or args.prompt or args.candidates:
        raise ValueError("--input and --out go together, without --prompt or candidates")
    check_outputs(files=[args.out])
    rows = read_rows(args.input, ("input", "output"), "rows to score")
    job = functools.partial(BatchScorer, args.model)

    def ray_job(dataset: Any) -> Any:
        from langchain_irl.ray import score_dataset

        return score_dataset(
            dataset,
            args.model,
            actors=args.actors,
            batch_size=args.batch_size,
            num_cpus=actor_cpus(args.actors),
        )

    count = write_jsonl(args.out, run_job(args, job, ray_job, rows, "scoring"))
    print(f"wrote {count} scored rows to {args.out}")
