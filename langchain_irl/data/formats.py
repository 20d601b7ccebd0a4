"""Demonstration, policy-sample and preference-pair files (JSON Lines, optionally gzipped).

- examples (demonstrations or policy samples): `{"input": ..., "output": "...", "score": 1.7}`
  `input` is a string or a list of chat messages `{"role": ..., "content": ...}`; `score` is an
  optional gold rating used only by evaluation.
- pairs: `{"input": ..., "chosen": "...", "rejected": "..."}`

Other keys are ignored. A malformed line raises `DataFileError` naming the file and line, unless
`skip_invalid=True`, which skips such lines and logs how many (and the first few reasons). Reading
and writing go through `data.jsonl`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_irl.data.jsonl import DataFileError, read_records
from langchain_irl.reward_model.rendering import PromptFormat, render_prompt

logger = logging.getLogger(__name__)

Messages = tuple[tuple[str, str], ...]  # (role, content) pairs, hashable
InputValue = str | Messages
_ROLES = {"system", "user", "assistant", "human", "ai", "tool"}


@dataclass(frozen=True)
class Example:
    """One (input, output) record: a demonstration or a policy sample."""

    input: InputValue
    output: str
    score: float | None = None

    def prompt(self, prompt_format: PromptFormat = "last_user") -> str:
        return render_prompt(input_messages(self.input), prompt_format)

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {"input": input_messages(self.input), "output": self.output}
        if self.score is not None:
            record["score"] = self.score
        return record


@dataclass(frozen=True)
class Pair:
    """One preference: for `input`, `chosen` was preferred over `rejected`."""

    input: InputValue
    chosen: str
    rejected: str

    def prompt(self, prompt_format: PromptFormat = "transcript") -> str:
        return render_prompt(input_messages(self.input), prompt_format)

    def to_json(self) -> dict[str, Any]:
        return {
            "input": input_messages(self.input),
            "chosen": self.chosen,
            "rejected": self.rejected,
        }


def input_messages(value: InputValue) -> str | list[dict[str, str]]:
    """An input as `render_prompt` takes it: the string, or the messages as role/content dicts."""
    if isinstance(value, str):
        return value
    return [{"role": role, "content": content} for role, content in value]


def parse_input(value: Any) -> InputValue:
    """Validate an `input` field: a string or a non-empty list of {"role", "content"} messages."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list) or not value:
        raise ValueError(f"'input' must be a string or a list of messages, got {_kind(value)}")
    messages = []
    for index, message in enumerate(value):
        if not isinstance(message, dict):
            raise ValueError(f"input[{index}] must be an object, got {_kind(message)}")
        role, content = message.get("role"), message.get("content")
        if role not in _ROLES:
            raise ValueError(f"input[{index}].role must be one of {sorted(_ROLES)}, got {role!r}")
        if not isinstance(content, str):
            raise ValueError(f"input[{index}].content must be a string, got {_kind(content)}")
        messages.append((role, content))
    return tuple(messages)


def parse_input_cell(value: Any) -> InputValue:
    """`parse_input` for a table cell: Arrow hands a list of messages over as an array of dicts."""
    if isinstance(value, str | list):
        return parse_input(value)
    return parse_input([dict(message) for message in value])


def parse_example(record: Mapping[str, Any]) -> Example:
    score = record.get("score")
    if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)):
        raise ValueError(f"'score' must be a number, got {_kind(score)}")
    return Example(
        parse_input(_field(record, "input")),
        _text(record, "output"),
        None if score is None else float(score),
    )


def parse_pair(record: Mapping[str, Any]) -> Pair:
    return Pair(
        parse_input(_field(record, "input")), _text(record, "chosen"), _text(record, "rejected")
    )


def read_examples(path: str | Path, *, skip_invalid: bool = False) -> list[Example]:
    """Read demonstrations or policy samples."""
    return read_records(path, parse_example, skip_invalid=skip_invalid)


def read_pairs(path: str | Path, *, skip_invalid: bool = False) -> list[Pair]:
    """Read preference pairs."""
    return read_records(path, parse_pair, skip_invalid=skip_invalid)


def read_objects(path: str | Path) -> list[dict[str, Any]]:
    """JSON objects, one per line, whatever their keys (the rows of a batch job)."""
    return read_records(path, dict)


def check_matched(
    demos: Sequence[Example],
    samples: Sequence[Example],
    demo_file: str | Path = "demonstrations",
    sample_file: str | Path = "policy samples",
) -> None:
    """Refuse data that cannot train or evaluate anything (empty files, samples of inputs no
    demonstration has); warn when only some samples match."""
    for path, records in ((demo_file, demos), (sample_file, samples)):
        if not records:
            raise DataFileError(f"{path}: no records")
    demo_inputs = {demo.input for demo in demos}
    unmatched = sum(sample.input not in demo_inputs for sample in samples)
    if unmatched == len(samples):
        raise DataFileError(
            f"{sample_file}: none of its {len(samples)} policy samples has the input of a "
            f"demonstration in {demo_file}; samples must answer the demonstrations' inputs"
        )
    if unmatched:
        logger.warning(
            "%s: %d of %d policy samples answer inputs that no demonstration has; they are "
            "ignored by pairwise metrics and training",
            sample_file,
            unmatched,
            len(samples),
        )


def _field(record: Mapping[str, Any], key: str) -> Any:
    if key not in record:
        raise ValueError(f"missing key {key!r} (keys present: {sorted(record)})")
    return record[key]


def _text(record: Mapping[str, Any], key: str) -> str:
    value = _field(record, key)
    if not isinstance(value, str):
        raise ValueError(f"{key!r} must be a string, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
