"""Run a batch job over a JSONL file: in this process, or on Ray (the same job, the same rows).

In-process, rows are read, handed to the job in batches of columns and written as they come back.
With Ray, `ray.data.read_json` reads the file, the job runs in an actor pool (`langchain_irl.ray`)
and the rows stream back here in the input's order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from tqdm.auto import tqdm

from langchain_irl.data.jsonl import to_json_value

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


def _rows(columns: Mapping[str, Any]) -> Iterator[Row]:
    keys = list(columns)
    size = len(columns[keys[0]]) if keys else 0
    for index in range(size):
        yield {key: to_json_value(columns[key][index]) for key in keys}
