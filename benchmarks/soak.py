"""Soak: memory stays flat across many best-of-n calls (RSS at the start and the end).

    python benchmarks/soak.py [--calls 2000] [--n 8] [--concurrency 50]

A real ChatOpenAI against the loopback server (with 10% injected HTTP 500s); prints RSS after a
warm-up and every 500 calls.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import warnings
from pathlib import Path

from langchain_openai import ChatOpenAI

from langchain_irl import BestOfN, RewardModel
from langchain_irl.testing.server import OpenAICompatibleServer

ROOT = Path(__file__).resolve().parents[1]


def rss_mb() -> float:
    status = Path("/proc/self/status").read_text().splitlines()
    return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    contest = json.loads((ROOT / "data/caption_contest/dev.jsonl").open().readline())
    answers = [caption["text"] for caption in contest["captions"]]
    model = RewardModel.load(ROOT / "models/caption-humor")
    with OpenAICompatibleServer(answers, failure_rate=0.1, keep_requests=False) as server:
        llm = ChatOpenAI(
            base_url=server.base_url, api_key="unused", model="loopback", max_retries=0
        )
        best = BestOfN(llm=llm, reward_model=model, n=args.n, native_n=False, max_concurrency=64)
        await asyncio.gather(*(best.ainvoke(contest["description"]) for _ in range(100)))
        start_rss, started = rss_mb(), time.perf_counter()
        print(f"{'calls':>6}{'RSS MB':>9}{'s':>8}")
        print(f"{0:>6}{start_rss:>9.1f}{0:>8.1f}")
        for done in range(args.concurrency, args.calls + 1, args.concurrency):
            await asyncio.gather(
                *(best.ainvoke(contest["description"]) for _ in range(args.concurrency))
            )
            if done % 500 == 0:
                print(f"{done:>6}{rss_mb():>9.1f}{time.perf_counter() - started:>8.1f}")
        end_rss = rss_mb()
    print(
        f"\nRSS {start_rss:.1f} MB after warm-up, {end_rss:.1f} MB after {args.calls} calls "
        f"({end_rss - start_rss:+.1f} MB); {server.request_count} requests, "
        f"{server.faults_injected} injected faults"
    )


if __name__ == "__main__":
    asyncio.run(main())
