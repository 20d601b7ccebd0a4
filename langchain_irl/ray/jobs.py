"""The Ray Data jobs: one `map_batches` over an actor pool of `langchain_irl.batch` classes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_irl.batch import BatchScorer, BestOfNRecords, PartitionedCollector
from langchain_irl.data.collect import Sampler
from langchain_irl.engine.selection import Selection
from langchain_irl.extras import require

ray_data = require("ray.data", "langchain_irl.ray", "ray")

if TYPE_CHECKING:
    from ray.data import Dataset

__all__ = ["best_of_n_dataset", "collect_dataset", "score_dataset"]

# Every job's actors take `num_cpus` each (1 by default). Leave some CPU for Ray Data's read
# tasks: actors that hold every CPU of a cluster starve the reads that feed them.

# An actor that dies mid-batch (a preempted node, an out-of-memory kill) is restarted and its
# batch retried (Ray Data's default for actor pools); the jobs are idempotent, so a retry never
# writes a row twice.


def score_dataset(
    dataset: Dataset,
    model: str | Path,
    *,
    actors: int = 1,
    batch_size: int = 256,
    prompt_column: str = "input",
    candidate_column: str = "output",
    reward_column: str = "reward",
    percentile_column: str | None = "percentile",
    num_threads: int | None = None,
    providers: Sequence[Any] | None = None,
    num_cpus: float = 1,
    num_gpus: float = 0,
) -> Dataset:
    """Add a reward column (and a percentile column, for a calibrated model) to (prompt,
    candidate) rows; each reward equals `RewardModel.score` for that row.

    `num_cpus` each actor reserves; `num_threads`: texts it encodes at once (default: the
    machine's cores). With `providers` (e.g. `["CUDAExecutionProvider",
    "CPUExecutionProvider"]`) give each actor `num_gpus`.
    """
    options = {
        "prompt_column": prompt_column,
        "candidate_column": candidate_column,
        "reward_column": reward_column,
        "percentile_column": percentile_column,
        "num_threads": num_threads,
        "providers": providers,
    }
    return _in_actor_pool(
        dataset, BatchScorer, (model,), options, "numpy", batch_size, actors, num_cpus, num_gpus
    )


def collect_dataset(
    dataset: Dataset,
    sampler_factory: Callable[[], Sampler],
    out_dir: str | Path,
    k: int,
    *,
    actors: int = 1,
    batch_size: int = 32,
    concurrency: int = 8,
    attempts: int = 3,
    partitions: int = 64,
    input_column: str = "input",
    num_cpus: float = 1,
) -> Dataset:
    """Collect k samples per input row into `out_dir/part-*.jsonl` (see `PartitionedCollector`).

    Lazy, like every Ray Dataset: `.materialize()` (or writing it) runs the job. Each returned row
    says how many of its input's k samples are on disk; run again to fill what failed. The rate
    limit a provider sees is at most `actors * concurrency` requests in flight.
    """
    options = {
        "partitions": partitions,
        "concurrency": concurrency,
        "attempts": attempts,
        "input_column": input_column,
    }
    arguments = (sampler_factory, str(out_dir), k)
    return _in_actor_pool(
        dataset, PartitionedCollector, arguments, options, "pandas", batch_size, actors, num_cpus
    )


def best_of_n_dataset(
    dataset: Dataset,
    sampler_factory: Callable[[], Sampler],
    model: str | Path,
    n: int,
    *,
    actors: int = 1,
    batch_size: int = 16,
    concurrency: int = 8,
    input_column: str = "input",
    num_cpus: float = 1,
    selection: Selection = "argmax",
    risk_weight: float = 1.0,
) -> Dataset:
    """For each prompt row: n samples scored, the `selection` rule's pick (the best by default)
    and the worst, with their rewards (see
    `BestOfNRecords`; `batch.best_of_n.sft_record` and `pair_record` give TRL's formats)."""
    options = {
        "concurrency": concurrency,
        "input_column": input_column,
        "selection": selection,
        "risk_weight": risk_weight,
    }
    arguments = (sampler_factory, model, n)
    return _in_actor_pool(
        dataset, BestOfNRecords, arguments, options, "pandas", batch_size, actors, num_cpus
    )


def _in_actor_pool(
    dataset: Dataset,
    job: type,
    arguments: tuple[Any, ...],
    options: dict[str, Any],
    batch_format: str,
    batch_size: int,
    actors: int,
    num_cpus: float,
    num_gpus: float = 0,
) -> Dataset:
    """`map_batches` with `job(*arguments, **options)` built once per actor of a fixed pool."""
    return dataset.map_batches(
        job,
        fn_constructor_args=arguments,
        fn_constructor_kwargs=options,
        batch_size=batch_size,
        batch_format=batch_format,
        compute=ray_data.ActorPoolStrategy(size=actors),
        num_cpus=num_cpus,
        num_gpus=num_gpus,
    )
