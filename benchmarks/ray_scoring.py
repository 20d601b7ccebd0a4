"""Rows per second: `RewardModel.score` in one process vs Ray Data with 1 and 2 actors.

20,000 (cartoon, caption) rows of the bundled caption contests, scored by `caption-humor`. Every
configuration gets the machine's cores: in one process the encoder runs one text per core; on
Ray each actor gets an equal share of the cores (its `num_threads`). Side by side, in one run.

    python benchmarks/ray_scoring.py [--rows 20000]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np

from langchain_irl import RewardModel
from langchain_irl.batch import BatchScorer
from langchain_irl.data.converters import read_caption_contests

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=512)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    contests = read_caption_contests(ROOT / "data/caption_contest/dev.jsonl")
    rows = [
        {"input": contest.description, "output": caption}
        for contest in contests
        for caption in contest.captions
    ][: args.rows]
    cores = os.cpu_count() or 1
    results: dict[str, tuple[float, np.ndarray]] = {}

    start = time.perf_counter()
    scorer = BatchScorer("caption-humor")  # what the in-process CLI runs: RewardModel.score
    rewards = []
    for offset in range(0, len(rows), args.batch_size):
        part = rows[offset : offset + args.batch_size]
        batch = {"input": [r["input"] for r in part], "output": [r["output"] for r in part]}
        rewards.append(scorer(batch)["reward"])
    results["one process (RewardModel.score)"] = (
        time.perf_counter() - start,
        np.concatenate(rewards),
    )

    import ray

    from langchain_irl.ray import score_dataset

    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    dataset = ray.data.from_items(rows).materialize()  # rows in the object store before timing
    for actors in (1, 2):
        start = time.perf_counter()
        scored = score_dataset(
            dataset,
            "caption-humor",
            actors=actors,
            batch_size=args.batch_size,
            num_threads=max(1, cores // actors),
            num_cpus=cores / actors * 0.9,
        )
        values = np.concatenate([b["reward"] for b in scored.iter_batches(batch_format="numpy")])
        results[f"Ray Data, {actors} actor{'s' * (actors > 1)}"] = (
            time.perf_counter() - start,
            values,
        )
    ray.shutdown()

    reference = results["one process (RewardModel.score)"]
    print(f"{len(rows)} rows, {cores} cores, caption-humor ({RewardModel.load('caption-humor')})")
    print(f"{'':34} {'seconds':>8} {'rows/s':>8} {'vs one process':>15} {'same rewards':>13}")
    for name, (seconds, values) in results.items():
        same = bool(np.array_equal(values, reference[1]))
        ratio = reference[0] / seconds
        print(f"{name:34} {seconds:8.1f} {len(rows) / seconds:8.0f} {ratio:14.2f}x {same!s:>13}")


if __name__ == "__main__":
    main()
