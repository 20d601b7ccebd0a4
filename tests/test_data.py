"""Data files: every malformed line is reported with file and line; converters on real data."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from langchain_irl.data.converters import caption_contest, hh_rlhf
from langchain_irl.data.formats import (
    DataFileError,
    Example,
    Pair,
    parse_example,
    read_examples,
    read_pairs,
)
from langchain_irl.data.jsonl import write_jsonl
from tests.conftest import CAPTIONS, HH_PAIRS


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_round_trip_with_chat_messages(tmp_path: Path) -> None:
    records = [
        Example("a cartoon", "a caption", 1.8),
        Example((("system", "be kind"), ("user", "hi")), "hello"),
    ]
    write_jsonl(tmp_path / "demos.jsonl.gz", (r.to_json() for r in records))
    assert read_examples(tmp_path / "demos.jsonl.gz") == records
    assert records[1].prompt("last_user") == "hi"
    assert records[1].prompt("transcript") == "\n\nSystem: be kind\n\nHuman: hi"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{not json", "Expecting property name"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('{"output": "x"}', "missing key 'input'"),
        ('{"input": "x"}', "missing key 'output'"),
        ('{"input": 3, "output": "x"}', "'input' must be a string or a list of messages, got int"),
        ('{"input": [], "output": "x"}', "got list"),
        ('{"input": [{"role": "wizard", "content": "x"}], "output": "x"}', "role must be one of"),
        ('{"input": [{"role": "user", "content": 5}], "output": "x"}', "content must be a string"),
        ('{"input": "x", "output": null}', "'output' must be a string, got null"),
        ('{"input": "x", "output": "y", "score": "high"}', "'score' must be a number"),
    ],
)
def test_malformed_example_names_file_and_line(tmp_path: Path, line: str, reason: str) -> None:
    path = _write(tmp_path / "demos.jsonl", ['{"input": "a", "output": "b"}', "", line])
    with pytest.raises(DataFileError, match=rf"demos\.jsonl:3: .*{reason}") as info:
        read_examples(path)
    assert str(path) in str(info.value)


def test_malformed_pair(tmp_path: Path) -> None:
    path = _write(tmp_path / "pairs.jsonl", ['{"input": "a", "chosen": "b"}'])
    with pytest.raises(DataFileError, match=r"pairs\.jsonl:1: missing key 'rejected'"):
        read_pairs(path)


def test_skip_invalid_keeps_the_rest_and_reports(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lines = ['{"input": "a", "output": "b"}', "oops", '{"input": "c", "output": "d"}', "[]"]
    path = _write(tmp_path / "demos.jsonl", lines)
    examples = read_examples(path, skip_invalid=True)
    assert [e.output for e in examples] == ["b", "d"]
    assert "skipped 2 invalid line(s)" in caplog.text and "demos.jsonl:2" in caplog.text


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="no such file"):
        read_examples(tmp_path / "absent.jsonl")
    (tmp_path / "bad.jsonl.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataFileError, match="unreadable"):
        read_examples(tmp_path / "bad.jsonl.gz")
    (tmp_path / "latin1.jsonl").write_bytes('{"input": "caf\xe9"}'.encode("latin-1"))
    with pytest.raises(DataFileError, match="unreadable"):
        read_examples(tmp_path / "latin1.jsonl")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=10,
)


@given(st.dictionaries(st.sampled_from(["input", "output", "score", "x"]), json_values))
def test_fuzz_records_parse_or_raise_value_error(record: dict) -> None:
    try:
        example = parse_example(record)
    except ValueError:
        return
    assert isinstance(example.output, str)


def test_caption_contest_converter() -> None:
    demos, samples = caption_contest(CAPTIONS, top=30, exclude={641})
    assert len(demos) == 49 * 30 and len(samples) == 49 * 300
    assert all(d.score >= s.score for d, s in zip(demos[:30], samples[:300], strict=False))
    assert not any(d.input.startswith("A shepard") for d in demos)


def test_leaving_out_a_contest_whose_description_another_keeps_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def contest(number: int, description: str) -> str:
        captions = [{"text": f"{number}-0", "rank": 0, "mean": 2.0, "chunk": "top"}]
        return json.dumps({"contest": number, "description": description, "captions": captions})

    path = _write(
        tmp_path / "contests.jsonl",
        [
            contest(644, "A couple at a mini-golf course"),
            contest(645, "A couple at a mini-golf course"),
            contest(646, "A dog at a desk"),
        ],
    )
    caption_contest(path, exclude={646})
    assert not caplog.records  # a description of its own: held out for real
    demos, _ = caption_contest(path, exclude={645})
    assert [d.output for d in demos] == ["644-0", "646-0"]
    assert "contest 645 is left out, but contest 644, kept, has the same description" in caplog.text
    caplog.clear()
    caption_contest(path, contests={645, 646})
    assert "contest 644 is left out, but contest 645, kept" in caplog.text


def test_caption_contest_bad_record(tmp_path: Path) -> None:
    path = _write(tmp_path / "contests.jsonl", ['{"contest": 1}'])
    with pytest.raises(DataFileError, match=r"contests\.jsonl:1: not a caption-contest record"):
        caption_contest(path)


def test_hh_rlhf_converter() -> None:
    pairs = hh_rlhf(HH_PAIRS)
    assert len(pairs) == 1384  # 3 of 1,387 differ before the last turn
    with gzip.open(HH_PAIRS, "rt", encoding="utf-8") as handle:
        first = json.loads(handle.readline())
    assert isinstance(pairs[0], Pair)
    assert first["chosen"] == f"{pairs[0].input}\n\nAssistant: {pairs[0].chosen}"
    assert pairs[0].input.startswith("\n\nHuman:") and not pairs[0].input.endswith("Assistant:")
