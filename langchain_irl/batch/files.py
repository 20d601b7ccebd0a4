"""Run a batch job over a JSONL file: in this process, or on Ray (the same job, the same rows).

In-process, rows are read, handed to the job in batches of columns and written as they come back.
With Ray, `ray.data.read_json` reads the file, the job runs in an actor pool (`langchain_irl.ray`)
and the rows stream back here in the input's order.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

Row = dict[str, Any]
Job = Callable[[Mapping[str, list[Any]]], Mapping[str, Any]]


def in_process(job: Job, rows: list[Row], batch_size: int, desc: str) -> Iterator[Row]:
    """The job over `rows`, `batch_size` rows at a time, with a progress bar."""
    with tqdm(total=len(rows), desc=desc, unit="row") as bar:
        for start in range(0, len(rows), batch_size):
            part = rows[start : start + batch_size]
            columns = {key: [row.get(key) for row in part] for key in part[0]}
            yield from _rows(job(columns))
            bar.update(len(part))


def on_ray(dataset: Any) -> Iterator[Row]:
    """Rows of a Ray Dataset, in order, as they are computed."""
    for batch in dataset.iter_batches(batch_format="numpy"):
        yield from _rows(batch)


def write_rows(path: Path, rows: Iterable[Row]) -> int:
    """Write rows as JSONL (numpy values as plain JSON); returns how many."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, default=_plain) + "\n")
            count += 1
    return count


def _rows(columns: Mapping[str, Any]) -> Iterator[Row]:
    keys = list(columns)
    size = len(columns[keys[0]]) if keys else 0
    for index in range(size):
        yield {key: _plain(columns[key][index]) for key in keys}


def _plain(value: Any) -> Any:
    """numpy scalars and arrays (Arrow's lists arrive as arrays) as JSON values."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
