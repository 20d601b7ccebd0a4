"""Selection among 10,000 demonstrations: milliseconds per query after the one-off embedding.

    python benchmarks/few_shot_selection.py [--demos 10000] [--queries 200]

Rows: the reward-aware selector (linear-head fast path: one matrix-vector product per query), the
same ranking through the head graph (the path an MLP head takes), and similarity only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

from langchain_irl import RewardExampleSelector, RewardModel

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--demos", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    contests = [json.loads(line) for line in (ROOT / "data/caption_contest/dev.jsonl").open()]
    examples = [
        {"input": contest["description"], "output": caption["text"]}
        for contest in contests
        for caption in contest["captions"]
    ][: args.demos]
    queries = [contest["description"] for contest in contests]
    model = RewardModel.load("caption-humor")

    start = time.perf_counter()
    selector = RewardExampleSelector(examples=examples, reward_model=model, k=4)
    embed_seconds = time.perf_counter() - start
    via_head = selector.model_copy()
    # the same index without the linear decomposition: every query goes through head.onnx
    head_index = dataclasses.replace(selector._index, base=None, interaction=None)
    via_head._indexed = (via_head.examples, head_index)
    similarity = selector.model_copy(update={"reward_weight": 0.0})

    print(f"{len(examples)} demonstrations embedded once in {embed_seconds:.1f} s\n")
    print(f"{'ranking':<40}{'ms/query (median)':>18}{'p95':>8}")
    for name, ranker in (
        ("reward-aware, linear fast path", selector),
        ("reward-aware, through the head graph", via_head),
        ("similarity only", similarity),
    ):
        times = []
        for i in range(args.queries):
            begin = time.perf_counter()
            ranker.rank(queries[i % len(queries)])
            times.append(1000 * (time.perf_counter() - begin))
        times.sort()
        print(f"{name:<40}{statistics.median(times):>18.2f}{times[int(0.95 * len(times))]:>8.2f}")


if __name__ == "__main__":
    main()
