"""Best-of-n as training data goes through the engine: dedup, retries that can succeed, no pair
of a text with itself, and a job whose every prompt failed is a failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from langchain_irl.batch.best_of_n import BestOfNRecords, pair_record, sft_record
from langchain_irl.cli import main
from langchain_irl.data.formats import InputValue
from langchain_irl.testing.server import OpenAICompatibleServer
from tests.conftest import BUNDLED_MODEL

PROMPT = "A well-dressed man complaining about his fuming soup to a server"


def _records(sampler: object, n: int = 4) -> BestOfNRecords:
    return BestOfNRecords(lambda: sampler, BUNDLED_MODEL, n)  # type: ignore[arg-type,return-value]


def test_identical_samples_make_no_pair() -> None:
    async def same(value: InputValue, k: int) -> list[str]:
        return ["Waiter, there is soup in my fly."] * k

    with pytest.warns(UserWarning, match="3 of 4 candidates were identical"):
        row = _one(_records(same)({"input": [PROMPT]}))
    assert row["completion"] == "Waiter, there is soup in my fly." and row["rejected"] == ""
    assert sft_record(row) is not None
    assert pair_record(row, margin=0.0) is None  # chosen == rejected is no preference


def test_pairs_need_a_positive_margin(caption_answers: list[str]) -> None:
    async def distinct(value: InputValue, k: int) -> list[str]:
        return caption_answers[:k]

    row = _one(_records(distinct)({"input": [PROMPT]}))
    assert row["completion"] != row["rejected"] and row["margin"] > 0
    pair = pair_record(row, margin=0.0)
    assert pair is not None and pair["chosen_reward"] > pair["rejected_reward"]
    assert pair_record({**row, "margin": 0.0}, margin=0.0) is None
    assert pair_record(row, margin=row["margin"] + 1) is None


def test_a_transient_failure_is_asked_again_and_a_bug_is_not(caption_answers: list[str]) -> None:
    calls: list[str] = []

    async def flaky(value: InputValue, k: int) -> list[str]:
        calls.append(str(value))
        if str(value) == "timeout" and calls.count("timeout") == 1:
            raise TimeoutError("the provider took too long")
        if str(value) == "bug":
            raise TypeError("a bug in the sampler")
        return caption_answers[:k]

    columns = _records(flaky)({"input": ["timeout", "bug"]})
    assert columns["completion"][0] in caption_answers and columns["error"][0] == ""
    assert calls.count("timeout") == 2  # one retry wave
    assert calls.count("bug") == 1 and "TypeError: a bug" in columns["error"][1]
    assert columns["completion"][1] == ""


def test_the_command_fails_when_every_prompt_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"input": PROMPT}) + "\n")
    with OpenAICompatibleServer(failure_rate=1.0, faults=["401"]) as server:
        code = main(
            [
                "best-of-n",
                "--input",
                str(prompts),
                "--sft",
                str(tmp_path / "sft.jsonl"),
                "--pairs",
                str(tmp_path / "pairs.jsonl"),
                "--reward-model",
                str(BUNDLED_MODEL),
                "--openai-model",
                "loopback",
                "--base-url",
                server.base_url,
                "--n",
                "4",
            ]
        )
        assert server.request_count == 1  # a 401 is not asked again
    assert code != 0
    assert "every prompt failed" in capsys.readouterr().err


def _one(columns: dict[str, list]) -> dict:
    return {key: values[0] for key, values in columns.items()}
