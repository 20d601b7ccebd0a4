"""Collect k policy samples per input into partitioned, append-only files, from many workers.

The contract of `data.collect` (k samples per input, resumable, nothing lost), for jobs that many
processes share. Every sample has a deterministic id, `sample_id(input, j)` for j < k, and lives in
the partition file its input hashes to (`part-00042.jsonl`). A worker appends a sample under the
partition's file lock, and only if its id is not there yet: a batch that runs twice (a Ray actor
killed mid-batch, a rerun of the whole job) asks only for the missing ids and never writes one
twice. Every line is flushed and fsync'ed as it is written; a torn last line is cut off.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from filelock import FileLock

from langchain_irl.data.collect import Sampler, sample_key
from langchain_irl.data.formats import InputValue, input_messages, parse_input_cell
from langchain_irl.data.jsonl import append_records, complete_lines
from langchain_irl.engine.runner import on_engine_loop

logger = logging.getLogger(__name__)


def sample_id(value: InputValue, index: int) -> str:
    """The id of the `index`-th sample of an input: the same on every machine and every run."""
    digest = hashlib.sha256(sample_key(value).encode("utf-8")).hexdigest()[:20]
    return f"{digest}-{index}"


class PartitionedCollector:
    """For each input of a batch: make sure its partition file holds samples 0..k-1.

    `sampler_factory` builds the sampler in the worker (a Ray actor), e.g.
    `functools.partial(openai_sampler, "my-model", base_url=...)`. Each batch runs on the
    worker's own event loop with at most `concurrency` requests in flight; a failed request is
    asked again up to `attempts` times in all. Returns one row per input: how many of its k
    samples are on disk (`samples`) and how many this batch wrote (`written`).
    """

    def __init__(
        self,
        sampler_factory: Callable[[], Sampler],
        out_dir: str | Path,
        k: int,
        *,
        partitions: int = 64,
        concurrency: int = 8,
        attempts: int = 3,
        input_column: str = "input",
    ) -> None:
        if k < 1 or partitions < 1 or concurrency < 1 or attempts < 1:
            raise ValueError("k, partitions, concurrency and attempts must be at least 1")
        self.sampler = sampler_factory()
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.k, self.partitions = k, partitions
        self.concurrency, self.attempts = concurrency, attempts
        self.input_column = input_column
        self._partitions: dict[int, _Partition] = {}

    def __call__(self, batch: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
        values = [parse_input_cell(v) for v in batch[self.input_column]]
        # The engine's long-lived loop: clients bound to a loop live as long as it.
        counts = on_engine_loop(self._fill(values))
        return {
            "input_key": [sample_key(v) for v in values],
            "samples": [have for have, _ in counts],
            "written": [written for _, written in counts],
        }

    async def _fill(self, values: list[InputValue]) -> list[tuple[int, int]]:
        semaphore = asyncio.Semaphore(self.concurrency)
        return list(await asyncio.gather(*(self._fill_one(v, semaphore) for v in values)))

    async def _fill_one(self, value: InputValue, semaphore: asyncio.Semaphore) -> tuple[int, int]:
        partition = self._partition(value)
        wanted = [sample_id(value, j) for j in range(self.k)]
        written = 0
        for attempt in range(self.attempts):
            present = await asyncio.to_thread(partition.ids)
            missing = [i for i in wanted if i not in present]
            if not missing:
                break
            try:
                async with semaphore:
                    outputs = (await self.sampler(value, len(missing)))[: len(missing)]
            except Exception as error:  # provider errors have no common base class
                logger.warning("attempt %d for an input failed: %s", attempt + 1, error)
                continue
            records = [
                {"id": i, "input": input_messages(value), "output": text}
                for i, text in zip(missing, outputs, strict=False)
            ]
            written += await asyncio.to_thread(partition.append_new, records)
        have = len(set(wanted) & await asyncio.to_thread(partition.ids))
        return have, written

    def _partition(self, value: InputValue) -> _Partition:
        digest = hashlib.sha256(sample_key(value).encode("utf-8")).digest()
        number = int.from_bytes(digest[:4], "big") % self.partitions
        if number not in self._partitions:
            self._partitions[number] = _Partition(self.out_dir / f"part-{number:05d}.jsonl")
        return self._partitions[number]


class _Partition:
    """One partition file and the ids in it, read incrementally (other workers append too)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = FileLock(f"{path}.lock")
        self._ids: set[str] = set()
        self._offset = 0
        self._guard = threading.Lock()  # one worker's threads share this index

    def ids(self) -> set[str]:
        with self._guard, self._lock:
            self._refresh(cut_torn=False)
            return set(self._ids)

    def append_new(self, records: list[dict[str, Any]]) -> int:
        """Append the records whose ids the file lacks, under its lock; how many were written."""
        with self._guard, self._lock:
            self._refresh(cut_torn=True)
            new = [r for r in records if r["id"] not in self._ids]
            if new:
                with self.path.open("ab") as handle:
                    append_records(handle, new)
                    self._offset = handle.tell()
                self._ids.update(r["id"] for r in new)
        return len(new)

    def _refresh(self, cut_torn: bool) -> None:
        """Read what was appended since the last read; a torn last line (a writer killed
        mid-line) is cut off when about to write."""
        if not self.path.exists():
            return
        with self.path.open("r+b") as handle:
            complete = complete_lines(handle, self.path, self._offset, repair=cut_torn)
        for line in complete.decode("utf-8").splitlines():
            if line.strip():
                self._ids.add(json.loads(line)["id"])
        self._offset += len(complete)


def read_partitions(out_dir: str | Path) -> list[dict[str, Any]]:
    """Every sample record of a partitioned collection (`id`, `input`, `output`)."""
    records = []
    for path in sorted(Path(out_dir).glob("part-*.jsonl")):
        records += _records(path)
    return records


def _records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open("rb") as handle:
        complete = complete_lines(handle, path, repair=False).decode("utf-8")
    return [json.loads(line) for line in complete.splitlines() if line.strip()]
