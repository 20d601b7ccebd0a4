"""Fault injection for batch jobs: a sampler whose process dies once, mid-job.

For testing that a job survives a worker's death (a preempted node, an out-of-memory kill) with
nothing lost and nothing written twice: the first process to make its `after`-th request creates
`marker` (atomically, so only one ever does) and exits on the spot, without cleanup.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from langchain_irl.data.collect import Sampler
from langchain_irl.data.formats import InputValue


def crash_once(sampler_factory: Callable[[], Sampler], marker: str | Path, after: int) -> Sampler:
    """`sampler_factory()`'s sampler, except that one process dies at its `after`-th request."""
    sampler = sampler_factory()
    requests = 0

    async def sample(value: InputValue, k: int) -> list[str]:
        nonlocal requests
        requests += 1
        if requests == after:
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                pass  # another process has crashed already
            else:
                os._exit(1)  # die mid-batch: no cleanup, no flush, like a kill -9
        return await sampler(value, k)

    return sample
