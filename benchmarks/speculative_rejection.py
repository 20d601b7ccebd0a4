"""Speculative best-of-16 vs best-of-16 vs one call: tokens generated, wall time, judge's verdict.

AlpacaEval instructions the bundled `helpful` reward never saw, each served by the loopback
OpenAI-compatible server with its own 51 real answers (the judge's reference excluded) at a fixed
token rate; `ChatOpenAI` streams them. Tokens are the server's own count of what it wrote (a closed
stream stops there); quality is GPT-4-turbo's `judge_win` of the picked answer (0 for NullModel's,
which has none). Several schedules are run for the tokens-vs-quality curve (a PNG).

    python benchmarks/speculative_rejection.py [--instructions 40] [--token-rate 100]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import warnings
from pathlib import Path

import numpy as np
from langchain_core.language_models import BaseChatModel
from langchain_openai import ChatOpenAI

from langchain_irl import BestOfN, RewardModel
from langchain_irl.data.converters import ALPACA_REFERENCE, held_out, read_alpaca_eval
from langchain_irl.engine.options import SpeculativeRejection
from langchain_irl.evaluation.plots import line_plot
from langchain_irl.testing.server import OpenAICompatibleServer

ROOT = Path(__file__).resolve().parents[1]
SCHEDULES = {
    "16/32/64/128, keep 1/2, 1 left (default)": SpeculativeRejection(),
    "32/64/128, keep 1/2, 2 left": SpeculativeRejection(checkpoints=(32, 64, 128)),
    "16/32/64, keep 1/2, 2 left": SpeculativeRejection(checkpoints=(16, 32, 64)),
    "8/16/32/64, keep 1/2, 1 left": SpeculativeRejection(
        checkpoints=(8, 16, 32, 64), min_survivors=1
    ),
    "16/32, keep 1/4, 1 left": SpeculativeRejection(
        checkpoints=(16, 32), keep=0.25, min_survivors=1
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=ROOT / "data/alpaca_eval/dev.jsonl.gz")
    parser.add_argument("--instructions", type=int, default=40)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--token-rate", type=float, default=100.0, help="tokens/s per stream")
    parser.add_argument("--plot", type=Path, default=ROOT / "models/speculative_rejection.png")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    records = read_alpaca_eval(args.data)
    chosen = held_out([r["instruction"] for r in records], 0.2, seed=0)  # never trained on
    records = sorted(
        (r for r in records if r["instruction"] in chosen), key=lambda r: r["instruction"]
    )
    records = records[: args.instructions]
    served = {
        r["instruction"]: {g: o for g, o in r["outputs"].items() if g != ALPACA_REFERENCE}
        for r in records
    }
    judge = {
        (prompt, text): judge_win or 0.0
        for prompt, outputs in served.items()
        for text, judge_win in outputs.values()
    }
    pools = {prompt: [text for text, _ in outputs.values()] for prompt, outputs in served.items()}
    reward_model = RewardModel.load("helpful")

    with OpenAICompatibleServer(answers_by_prompt=pools, token_rate=args.token_rate) as server:
        llm = ChatOpenAI(
            model="loopback", base_url=server.base_url, api_key="unused", temperature=1.0
        )
        common = {"llm": llm, "reward_model": reward_model, "n": args.n, "max_concurrency": 64}
        runs: dict[str, BaseChatModel] = {
            "single call": llm,
            f"best-of-{args.n}": BestOfN(**common),
            **{
                f"speculative {name}": BestOfN(**common, speculative=schedule)
                for name, schedule in SCHEDULES.items()
            },
        }

        async def measure(model: BaseChatModel) -> tuple[int, float, float]:
            server.reset_counts()
            start = time.perf_counter()
            replies = [await model.ainvoke(prompt) for prompt in pools]  # one call at a time
            seconds = (time.perf_counter() - start) / len(pools)
            await asyncio.sleep(0.2)  # let the server notice the last closed streams
            picks = zip(pools, replies, strict=True)
            quality = np.mean([judge.get((p, r.text), 0.0) for p, r in picks])
            return server.tokens_sent // len(pools), seconds, float(quality)

        async def measure_all() -> dict[str, tuple[int, float, float]]:
            return {name: await measure(model) for name, model in runs.items()}

        results = asyncio.run(measure_all())

    single, full = results["single call"], results[f"best-of-{args.n}"]
    print(
        f"{len(pools)} held-out AlpacaEval instructions, {args.n} candidates, "
        f"{args.token_rate:g} tokens/s per stream, reward {reward_model.name}"
    )
    header = f"{'':36} {'tokens/call':>11} {'s/call':>7} {'judge_win':>9}"
    print(f"{header} {'tokens vs bo16':>15} {'gain kept':>10}")
    for name, (tokens, seconds, quality) in results.items():
        ratio = full[0] / tokens if tokens else float("inf")
        gain = full[2] - single[2]
        kept = (quality - single[2]) / gain if gain else float("nan")
        print(
            f"{name:36} {tokens:>11} {seconds:>7.2f} {quality:>9.3f} {ratio:>14.2f}x {kept:>9.0%}"
        )
    speculative = {k: v for k, v in results.items() if k.startswith("speculative")}
    series = {
        name.removeprefix("speculative "): ([float(v[0])], [v[2]])
        for name, v in speculative.items()
    }
    series["single call → best-of-n"] = ([float(single[0]), float(full[0])], [single[2], full[2]])
    line_plot(
        series,
        args.plot,
        f"speculative rejection: tokens vs quality ({len(pools)} instructions)",
        "output tokens generated per call (the server's count)",
        "mean judge_win of the pick",
    )
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
