"""Reliability and safety: injected faults, load, fuzzing, crash-safe writes, no pickle or eval."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import warnings
from pathlib import Path

import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_openai import ChatOpenAI

from langchain_irl import BestOfN, RewardExampleSelector, RewardModel
from langchain_irl.data.formats import parse_pair
from langchain_irl.reward_model.card import CARD_FILE
from langchain_irl.testing.server import OpenAICompatibleServer
from langchain_irl.train import artifact
from tests.conftest import BUNDLED_MODEL, ROOT

FAULTS = ["500", "429", "timeout", "malformed"]
PROMPT = "A well-dressed man complaining about his fuming soup to a server"


def _llm(server: OpenAICompatibleServer, **params: object) -> ChatOpenAI:
    return ChatOpenAI(
        base_url=server.base_url, api_key="unused", model="loopback", max_retries=0, **params
    )


async def test_500_calls_with_30_percent_faults_lose_nothing(
    caption_answers: list[str], model: RewardModel
) -> None:
    with OpenAICompatibleServer(
        answers=caption_answers, failure_rate=0.3, faults=FAULTS, hang_seconds=3.0, seed=7
    ) as server:
        best = BestOfN(
            llm=_llm(server, timeout=2.0),
            reward_model=model,
            n=8,
            native_n=False,
            max_concurrency=64,
        )
        outcomes: list[object] = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(10):
                outcomes += await asyncio.gather(
                    *(best.ainvoke(PROMPT) for _ in range(50)), return_exceptions=True
                )
        answered = [o for o in outcomes if not isinstance(o, BaseException)]
        raised = [o for o in outcomes if isinstance(o, BaseException)]
        recorded = 0
        for message in answered:
            meta = message.response_metadata["best_of_n"]  # type: ignore[attr-defined]
            assert meta["n_succeeded"] + len(meta["failures"]) == 8
            assert meta["n_succeeded"] >= 1
            recorded += len(meta["failures"])
        # a call fails only when all 8 candidates did, with the provider's own error
        assert all(isinstance(e, openai.APIError | json.JSONDecodeError) for e in raised)
        assert recorded + 8 * len(raised) == server.faults_injected
        assert len(server.requests) == 8 * 500
        assert 0.25 < server.faults_injected / len(server.requests) < 0.35
        print(
            f"\n500 calls: {len(answered)} answered, {len(raised)} failed (all candidates), "
            f"{server.faults_injected} injected faults recorded"
        )


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("500", openai.InternalServerError),
        ("429", openai.RateLimitError),
        ("timeout", openai.APITimeoutError),
        ("malformed", json.JSONDecodeError),  # what the openai client raises on a bad body
    ],
)
def test_all_failed_gives_the_underlying_error(
    fault: str, error: type[Exception], model: RewardModel
) -> None:
    with OpenAICompatibleServer(failure_rate=1.0, faults=[fault], hang_seconds=2.0) as server:
        best = BestOfN(llm=_llm(server, timeout=0.5), reward_model=model, n=3, native_n=False)
        with pytest.raises(error):
            best.invoke(PROMPT)


async def test_200_concurrent_calls_respect_the_bound(
    caption_answers: list[str], model: RewardModel
) -> None:
    with OpenAICompatibleServer(answers=caption_answers, latency=0.02, jitter=0.02) as server:
        best = BestOfN(
            llm=_llm(server), reward_model=model, n=8, native_n=False, max_concurrency=16
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results = await asyncio.gather(*(best.ainvoke(PROMPT) for _ in range(200)))
        assert len(results) == 200 and all(r.text for r in results)
        assert len(server.requests) == 1600
        assert 8 <= server.max_in_flight <= 16  # concurrent, and never above the bound


def test_sync_calls_from_many_threads_respect_the_bound(
    caption_answers: list[str], model: RewardModel
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with OpenAICompatibleServer(answers=caption_answers, latency=0.02) as server:
        best = BestOfN(llm=_llm(server), reward_model=model, n=4, native_n=False, max_concurrency=5)
        with warnings.catch_warnings(), ThreadPoolExecutor(10) as pool:
            warnings.simplefilter("ignore")
            results = list(pool.map(lambda _: best.invoke(PROMPT), range(20)))
        assert len(results) == 20 and server.max_in_flight <= 5


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(query=st.text(max_size=2000), k=st.integers(min_value=1, max_value=5))
def test_fuzz_selector(model: RewardModel, query: str, k: int) -> None:
    selector = RewardExampleSelector(
        examples=[{"input": "a\x00b", "output": "\u202e\ud7ff"}, {"input": "", "output": ""}],
        reward_model=model,
    )
    assert len(selector.rank(query, k)) == min(k, 2)


@given(st.dictionaries(st.sampled_from(["input", "chosen", "rejected"]), st.text() | st.integers()))
def test_fuzz_pairs(record: dict) -> None:
    try:
        pair = parse_pair(record)
    except ValueError:
        return
    assert isinstance(pair.chosen, str) and isinstance(pair.rejected, str)


def test_megabyte_input_is_truncated_fast(model: RewardModel) -> None:
    import time

    huge = "\U0001f600 mixed テキスト \x07" * 60_000  # ~1 MB
    start = time.perf_counter()
    scores = model.score(huge, [huge, ""])
    assert time.perf_counter() - start < 3 and scores.shape == (2,)


def test_a_crash_while_writing_never_leaves_a_loadable_half_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    card = RewardModel.load(BUNDLED_MODEL).card
    files = {name: BUNDLED_MODEL / name for name in card.files}
    target = tmp_path / "model"
    artifact.write_model_folder(target, card, files)
    before = (target / CARD_FILE).read_bytes()

    copies = 0
    real_copy = shutil.copyfile

    def crash_on_second_file(source: Path, destination: Path) -> Path:
        nonlocal copies
        copies += 1
        if copies == 2:
            raise OSError("disk full (injected)")
        return real_copy(source, destination)

    monkeypatch.setattr(artifact.shutil, "copyfile", crash_on_second_file)
    with pytest.raises(OSError, match="injected"):
        artifact.write_model_folder(target, card, files)
    assert (target / CARD_FILE).read_bytes() == before  # the old model is untouched
    RewardModel.load(target)
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no half-written leftovers


def test_nothing_unpickles_or_evaluates() -> None:
    forbidden = re.compile(
        r"import pickle|pickle\.loads?\(|(?<![.\w])eval\(|(?<![.\w])exec\(|allow_pickle=True"
        r"|torch\.load\(|yaml\.load\(|marshal\.loads?\("
    )
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in (ROOT / "langchain_irl").rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if forbidden.search(line) and not line.lstrip().startswith("#")
    ]
    assert offenders == []
