"""Wall time of best-of-8 vs one plain call vs a sequential loop of 8 calls (what DSPy's BestOfN
does), with a real ChatOpenAI against the loopback server at 1 s latency per request (+ jitter).

    python benchmarks/best_of_n_latency.py [--latency 1.0] [--jitter 0.1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path

from langchain_openai import ChatOpenAI

from langchain_irl import BestOfN, RewardModel
from langchain_irl.testing.server import OpenAICompatibleServer

ROOT = Path(__file__).resolve().parents[1]


def timed(function: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--jitter", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n", type=int, default=8)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    contest = json.loads((ROOT / "data/caption_contest/dev.jsonl").open().readline())
    answers = [caption["text"] for caption in contest["captions"]]
    prompt = contest["description"]
    reward_model = RewardModel.load(ROOT / "models/caption-humor")
    with OpenAICompatibleServer(answers, latency=args.latency, jitter=args.jitter) as server:
        llm = ChatOpenAI(base_url=server.base_url, api_key="unused", model="loopback")
        native = BestOfN(llm=llm, reward_model=reward_model, n=args.n, native_n=True)
        concurrent = BestOfN(llm=llm, reward_model=reward_model, n=args.n, native_n=False)

        def sequential() -> None:
            candidates = [llm.invoke(prompt).text for _ in range(args.n)]
            reward_model.score(prompt, candidates)

        async def timed_async(factory: Callable[[], Awaitable[object]]) -> float:
            # One event loop for every async call: the OpenAI client is cached across calls.
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                await factory()
                times.append(time.perf_counter() - start)
            return statistics.median(times)

        async def async_rows() -> list[tuple[str, float]]:
            return [
                (
                    f"best-of-{args.n} native n (ainvoke)",
                    await timed_async(lambda: native.ainvoke(prompt)),
                ),
                (
                    f"best-of-{args.n} concurrent (ainvoke)",
                    await timed_async(lambda: concurrent.ainvoke(prompt)),
                ),
            ]

        rows = [
            ("one plain call (invoke)", timed(lambda: llm.invoke(prompt), args.repeats)),
            (
                f"best-of-{args.n} native n (invoke)",
                timed(lambda: native.invoke(prompt), args.repeats),
            ),
            (
                f"best-of-{args.n} concurrent (invoke)",
                timed(lambda: concurrent.invoke(prompt), args.repeats),
            ),
            *asyncio.run(async_rows()),
            (f"sequential loop of {args.n} + scoring", timed(sequential, 1)),
        ]
    base = rows[0][1]
    print(
        f"latency {args.latency:.1f} s + up to {args.jitter:.1f} s jitter per request; "
        f"median of {args.repeats}\n"
    )
    print(f"{'variant':<38}{'wall s':>8}{'x one call':>12}")
    for name, seconds in rows:
        print(f"{name:<38}{seconds:>8.2f}{seconds / base:>12.2f}")


if __name__ == "__main__":
    main()
