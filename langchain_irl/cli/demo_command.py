"""`langchain-irl demo`: its options; the demo itself is `langchain_irl.cli.demo`, imported only
when it runs (it loads LangChain and the bundled model).

Its files (the best-of-n curve) go to --out, by default a folder of the user's cache
($XDG_CACHE_HOME/langchain-irl/demo, else ~/.cache/langchain-irl/demo), replaced on each run:
never into the folder it is run from.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from langchain_irl.cli.options import add_command, check_outputs, positive


def default_out() -> Path:
    """The demo's folder in the user's cache."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "langchain-irl" / "demo"


def add_parser(commands: Any) -> None:
    demo = add_command(commands, "demo", "offline demo on cartoons the bundled model never saw")
    demo.add_argument(
        "--model",
        help="use this model at an OpenAI-compatible endpoint (OPENAI_BASE_URL, OPENAI_API_KEY) "
        "instead of the offline crowd of contest entrants",
    )
    demo.add_argument("--reward-model", default="caption-humor", help="a bundled name or a folder")
    demo.add_argument("--data", type=Path, help="caption-contest JSONL (default: the bundled one)")
    demo.add_argument(
        "--out",
        type=Path,
        help="folder for the demo's files (default: $XDG_CACHE_HOME/langchain-irl/demo, else "
        "~/.cache/langchain-irl/demo; never the current folder)",
    )
    demo.add_argument(
        "--plot", type=Path, help="the best-of-n curve PNG (default: OUT/best_of_n_demo.png)"
    )
    demo.add_argument("--n", type=positive, default=16, help="candidates per cartoon")
    demo.add_argument("--seed", type=int, default=0, help="seed of the crowd's draws")
    demo.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from langchain_irl.cli.demo import run_demo

    plot = args.plot or (args.out or default_out()) / "best_of_n_demo.png"
    check_outputs(files=[plot], folders=[args.out])
    run_demo(
        model=args.reward_model,
        data_file=args.data,
        n=args.n,
        seed=args.seed,
        llm_name=args.model,
        plot=plot,
    )
