"""Does a reward trained on whole answers judge their beginnings? (speculative rejection's premise)

For AlpacaEval instructions the bundled `helpful` model never saw, every judged answer is scored
whole and cut to its first t tokens (whitespace words, as the loopback server streams them). Each
prefix is judged by the reward itself (as if it were a whole answer) and, where the folder has
one, by its prefix head. Per instruction: the Spearman correlation of the prefix's score with the
whole answer's reward, and how often the whole answer that scores best is still in the top half
by its prefix (what a checkpoint that keeps half would keep). Prints a table, saves the curves as
a PNG.

    python benchmarks/prefix_rewards.py [--instructions 111] [--plot models/prefix_rewards.png]
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np

from langchain_irl import RewardModel
from langchain_irl.data.converters import alpaca_eval, held_out, read_alpaca_eval
from langchain_irl.data.edits import first_words
from langchain_irl.engine.options import SpeculativeRejection
from langchain_irl.evaluation.metrics import spearman
from langchain_irl.evaluation.plots import line_plot

ROOT = Path(__file__).resolve().parents[1]
# the default schedule's checkpoints, and the powers of two the prefix head is trained around
PREFIXES = tuple(sorted({16, 32, 64, 128, *SpeculativeRejection().checkpoints}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=ROOT / "data/alpaca_eval/dev.jsonl.gz")
    parser.add_argument("--model", default="helpful")
    parser.add_argument(
        "--instructions", type=int, default=None, help="the first N held out (default: all 111)"
    )
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

    # Each judge of a prefix: the reward scoring it as a whole answer, and the prefix head.
    judges = {"reward": model.score}
    if model.card.prefix_head is not None:
        judges["prefix head"] = model.score_prefixes
    correlations = {(j, t): [] for j in judges for t in PREFIXES}
    winner_kept = {(j, t): [] for j in judges for t in PREFIXES}
    for prompt, answers in by_prompt.items():
        whole = model.score(prompt, answers)
        best = int(np.argmax(whole))
        for t in PREFIXES:
            prefixes = [first_words(a, t) for a in answers]
            for judge, score in judges.items():
                partial = score(prompt, prefixes)
                correlations[judge, t].append(spearman(partial, whole))
                top_half = np.argsort(-partial, kind="stable")[: (len(answers) + 1) // 2]
                winner_kept[judge, t].append(best in top_half)

    print(f"{len(by_prompt)} held-out instructions, {len(judged)} judged answers, {model.name}")
    header = ("first t tokens", "judge", "Spearman with whole", "best kept by top half")
    print(f"{header[0]:>15} {header[1]:>12} {header[2]:>20} {header[3]:>22}")
    for t in PREFIXES:
        for judge in judges:
            spearman_t, kept_t = np.mean(correlations[judge, t]), np.mean(winner_kept[judge, t])
            print(f"{t:>15} {judge:>12} {spearman_t:>20.3f} {kept_t:>22.1%}")
    series = {}
    for judge in judges:
        series[f"{judge}: Spearman(prefix score, whole score)"] = (
            list(PREFIXES),
            [float(np.mean(correlations[judge, t])) for t in PREFIXES],
        )
        series[f"{judge}: whole-answer winner in the prefix top half"] = (
            list(PREFIXES),
            [float(np.mean(winner_kept[judge, t])) for t in PREFIXES],
        )
    line_plot(
        series,
        args.plot,
        f"{model.name}: judging the first t tokens of AlpacaEval answers",
        "t (tokens written)",
        "per instruction, mean",
    )
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
