"""The `langchain-irl` command line: data conversion, collection, training, evaluation, scoring,
the bundled models and the offline demo.

Each command's work lives in the library and its options in a module of this package; this one
parses arguments, runs the command, and turns the errors a command can meet into one line on
stderr (exit code 2; `errors.one_line` says which and how), or into the full traceback with
--debug, given before or after the command.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Sequence

from langchain_irl import __version__
from langchain_irl.cli import (
    best_of_n,
    collect,
    data,
    demo_command,
    distill,
    models,
    optimize,
    report,
    score,
    train,
)
from langchain_irl.cli import eval as evaluate
from langchain_irl.cli.errors import one_line
from langchain_irl.cli.options import DEBUG_HELP, Formatter

EPILOG = """\
examples:
  langchain-irl models
  langchain-irl demo
  langchain-irl score caption-humor --prompt "A cat chairs a board meeting." \\
      "Any other business?" "Meow."
  langchain-irl data caption-contest train.jsonl.gz --out-dir build/captions
  langchain-irl collect --demos demos.jsonl --out samples.jsonl --k 8 --model openai:gpt-4o-mini \\
      --system "Write a funny caption for the cartoon described."
  langchain-irl collect --demos demos.jsonl --out samples.jsonl --k 8 --model my-model \\
      --base-url http://localhost:8000/v1
  langchain-irl train --demos build/captions/demos.jsonl --samples build/captions/samples.jsonl \\
      --out models/my-model [--fine-tune-steps 600]
  langchain-irl eval models/my-model --demos build/captions/demos.jsonl \\
      --samples build/captions/samples.jsonl --out out/eval
  langchain-irl report caption-humor --out out/report [--demos D --samples S]
  langchain-irl score helpful --input logged.jsonl --out scored.jsonl [--ray --actors 8]
  langchain-irl best-of-n --input prompts.jsonl --sft sft.jsonl --pairs pairs.jsonl \\
      --reward-model helpful --model openai:gpt-4o-mini --n 8 --margin 0.5 [--ray]
  langchain-irl optimize --reward-model caption-humor --prompt examples/prompt.json \\
      --inputs cartoons.jsonl --demos demos.jsonl --model openai:gpt-4o-mini --out optimized.json
  langchain-irl distill --base model.gguf --reward-model caption-humor --prompt prompt.json \\
      --inputs cartoons.jsonl --out build/student [--rounds 2 --method dpo --export-openai D]
"""

# The commands in the order `--help` lists them.
COMMANDS = (
    models,
    demo_command,
    score,
    best_of_n,
    optimize,
    distill,
    data,
    collect,
    train,
    evaluate,
    report,
)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("root", "onnxruntime", "transformers", "httpx", "torch"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(args.run(args) or 0)
    except Exception as exc:
        message = one_line(exc)
        if message is None:  # not an error a command expects: a bug, with its traceback
            raise
        if args.debug:
            traceback.print_exc()
        else:
            print(
                f"langchain-irl: error: {message} (run with --debug for the traceback)",
                file=sys.stderr,
            )
        return 2


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line's arguments (exits with usage on an error, as argparse does)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # `score MODEL --prompt P CANDIDATE...`: argparse gives the candidates after an option back
    # as extras, since `candidates` may be empty (the --input mode); they are candidates.
    if extra and args.command == "score" and not any(e.startswith("-") for e in extra):
        args.candidates = [*args.candidates, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="langchain-irl",
        description="Learn a reward from demonstrations and use it with LangChain.",
        epilog=EPILOG,
        formatter_class=Formatter,
    )
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
