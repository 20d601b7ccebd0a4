"""Does a reward trained on whole answers judge their beginnings? (speculative rejection's premise)

For AlpacaEval instructions the bundled `helpful` model never saw, every judged answer is scored
whole and cut to its first t tokens (whitespace words, as the loopback server streams them). Per
instruction: the Spearman correlation of the prefix score with the whole answer's score, and how
often the whole answer that scores best is still in the top half by its prefix (what a checkpoint
that keeps half would keep). Prints a table, saves the curve as a PNG.

    python benchmarks/prefix_rewards.py [--instructions 40] [--plot models/prefix_rewards.png]
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np

from langchain_irl import RewardModel
from langchain_irl.data.converters import alpaca_eval, held_out, read_alpaca_eval
from langchain_irl.evaluation.metrics import spearman
from langchain_irl.evaluation.plots import line_plot

ROOT = Path(__file__).resolve().parents[1]
PREFIXES = (16, 32, 64, 128)


def prefix(text: str, tokens: int) -> str:
    return " ".join(text.split(" ")[:tokens])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=ROOT / "data/alpaca_eval/dev.jsonl.gz")
    parser.add_argument("--model", default="helpful")
    parser.add_argument("--instructions", type=int, default=40)
    parser.add_argument("--plot", type=Path, default=ROOT / "models/prefix_rewards.png")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    model = RewardModel.load(args.model)
    instructions = [r["instruction"] for r in read_alpaca_eval(args.data)]
    chosen = sorted(held_out(instructions, 0.2, seed=0))[: args.instructions]  # never trained on
    judged = alpaca_eval(args.data, instructions=set(chosen)).judged
    by_prompt: dict[str, list[str]] = {}
    for example in judged:
        by_prompt.setdefault(str(example.input), []).append(example.output)

    correlations: dict[int, list[float]] = {t: [] for t in PREFIXES}
    winner_kept: dict[int, list[bool]] = {t: [] for t in PREFIXES}
    for prompt, answers in by_prompt.items():
        whole = model.score(prompt, answers)
        best = int(np.argmax(whole))
        for t in PREFIXES:
            partial = model.score(prompt, [prefix(a, t) for a in answers])
            correlations[t].append(spearman(partial, whole))
            top_half = np.argsort(-partial, kind="stable")[: (len(answers) + 1) // 2]
            winner_kept[t].append(best in top_half)

    print(f"{len(by_prompt)} held-out instructions, {len(judged)} judged answers, {model.name}")
    print(f"{'first t tokens':>15} {'Spearman with whole':>20} {'best kept by top half':>22}")
    for t in PREFIXES:
        print(f"{t:>15} {np.mean(correlations[t]):>20.3f} {np.mean(winner_kept[t]):>22.1%}")
    line_plot(
        {
            "Spearman(prefix score, whole score)": (
                list(PREFIXES),
                [float(np.mean(correlations[t])) for t in PREFIXES],
            ),
            "whole-answer winner in the prefix top half": (
                list(PREFIXES),
                [float(np.mean(winner_kept[t])) for t in PREFIXES],
            ),
        },
        args.plot,
        f"{model.name}: scoring the first t tokens of AlpacaEval answers",
        "t (tokens written)",
        "per instruction, mean",
    )
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
