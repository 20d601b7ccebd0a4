"""JSON Lines, one way everywhere: reading with file:line errors, atomic writes, fsync'ed appends,
and the repair of a torn last line. Plain or gzipped (`.gz`), by the file's suffix.

Every reader and writer of the package goes through here: the demonstration formats, the dataset
converters, collection caches (appended as samples arrive, repaired after a kill), batch jobs'
outputs.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, TypeVar

import numpy as np

logger = logging.getLogger(__name__)
T = TypeVar("T")


class DataFileError(ValueError):
    """A data file (or one of its lines) is not in the documented format."""


def numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) of a text file, gzipped or not; unreadable files raise DataFileError."""
    try:
        with _open(path, "rt") as handle:
            yield from enumerate(handle, start=1)
    except (UnicodeDecodeError, OSError, EOFError) as exc:  # gzip errors are OSError/EOFError
        raise DataFileError(f"{path}: unreadable ({exc})") from exc


def read_records(
    path: str | Path,
    parse: Callable[[Mapping[str, Any]], T],
    *,
    what: str | None = None,
    skip_invalid: bool = False,
) -> list[T]:
    """Each line's JSON object through `parse`; blank lines are skipped. A line that is not JSON,
    not an object, or that `parse` refuses (ValueError, KeyError, TypeError) raises
    `DataFileError` naming the file, the line and the reason (as "not {what} (...)" when `what`
    is given), or with `skip_invalid` is skipped and counted."""
    source = Path(path)
    if not source.is_file():
        raise DataFileError(f"{source}: no such file")
    items: list[T] = []
    errors: list[str] = []
    for number, line in numbered_lines(source):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError(f"expected a JSON object, got {_kind(record)}")
            items.append(parse(record))
        except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
            reason = f"not {what} ({exc})" if what else str(exc)
            message = f"{source}:{number}: {reason}"
            if not skip_invalid:
                raise DataFileError(message) from exc
            errors.append(message)
    if errors:
        logger.warning(
            "skipped %d invalid line(s) of %s, kept %d; first: %s",
            len(errors),
            source,
            len(items),
            "; ".join(errors[:3]),
        )
    return items


def write_jsonl(path: str | Path, records: Iterable[Mapping[str, Any]]) -> int:
    """Write records atomically (a temporary file renamed into place); returns the count. numpy
    values are written as plain JSON, NaN as null."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".tmp-{target.name}")  # keeps the suffix (.gz)
    count = 0
    try:
        with _open(temporary, "wt") as handle:
            for record in records:
                handle.write(_line(record))
                count += 1
        with temporary.open("rb") as written:  # on disk before it takes the target's place
            os.fsync(written.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, target)
    return count


def append_records(handle: IO[bytes], records: Iterable[Mapping[str, Any]]) -> None:
    """Append records in one write, flushed and fsync'ed before returning: records written
    together land together, and survive a crash once this returns."""
    payload = "".join(_line(record) for record in records).encode("utf-8")
    handle.seek(0, os.SEEK_END)
    handle.write(payload)
    handle.flush()
    os.fsync(handle.fileno())


def complete_lines(handle: IO[bytes], path: Path, offset: int = 0, *, repair: bool) -> bytes:
    """The whole lines from `offset` on. A torn last line (a writer killed mid-line) is left out,
    and with `repair` cut off the file, so that the next append starts on a line of its own."""
    handle.seek(offset)
    data = handle.read()
    complete = data[: data.rfind(b"\n") + 1]
    if repair and len(complete) < len(data):
        logger.warning("%s: dropping a torn last line (%d bytes)", path, len(data) - len(complete))
        handle.truncate(offset + len(complete))
    return complete


def to_json_value(value: Any) -> Any:
    """numpy scalars and arrays (Arrow's lists arrive as arrays) as JSON values; NaN as None."""
    if isinstance(value, np.ndarray):
        return [to_json_value(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    if isinstance(value, Mapping):
        return {k: to_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    return value


def _line(record: Mapping[str, Any]) -> str:
    return json.dumps(to_json_value(record), ensure_ascii=False) + "\n"


def _open(path: Path, mode: str) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, mode, encoding="utf-8")  # type: ignore[return-value]
    return path.open(mode[0], encoding="utf-8")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
