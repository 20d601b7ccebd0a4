"""Answer pools for the loopback server, from the project's JSONL example files."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from langchain_irl.data.formats import DataFileError, read_examples


def read_pool(path: str | Path) -> tuple[list[str], dict[str, list[str]]]:
    """(all answers, answers by prompt) from a demonstrations or samples file: each record's
    output answers its input (the last user message of a request), and any other request."""
    records = read_examples(path)
    if not records:
        raise DataFileError(f"{path}: no records to answer with")
    by_prompt: dict[str, list[str]] = defaultdict(list)
    for record in records:
        by_prompt[record.prompt("last_user")].append(record.output)
    return [record.output for record in records], dict(by_prompt)
