"""Reliability and safety: injected faults, load, fuzzing, crash-safe writes, no pickle or eval."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_openai import ChatOpenAI

from langchain_irl import BestOfN, RewardExampleSelector, RewardModel
from langchain_irl.data.formats import parse_pair
from langchain_irl.reward_model.card import CARD_FILE
from langchain_irl.testing.server import OpenAICompatibleServer
from langchain_irl.train import artifact
from tests.conftest import BUNDLED_MODEL, DUPLICATE_CANDIDATES, ROOT, WITH_FIXTURES

FAULTS = ["500", "429", "timeout", "malformed"]
PROMPT = "A well-dressed man complaining about his fuming soup to a server"


def _llm(server: OpenAICompatibleServer, **params: object) -> ChatOpenAI:
    return ChatOpenAI(
        base_url=server.base_url, api_key="unused", model="loopback", max_retries=0, **params
    )


async def test_500_calls_with_30_percent_faults_lose_nothing(
    caption_answers: list[str], model: RewardModel
) -> None:
    """Every fault the server injects is recorded in the metadata of the call it hit, and every
    call is answered: failed candidates are asked for again."""
    with OpenAICompatibleServer(
        answers=caption_answers, failure_rate=0.3, faults=FAULTS, hang_seconds=3.0, seed=7
    ) as server:
        best = BestOfN(
            llm=_llm(server, timeout=2.0),
            reward_model=model,
            n=8,
            native_n=False,
            max_concurrency=64,
            candidate_retries=6,
        )
        outcomes = await _calls(best, 500)
        assert not [o for o in outcomes if isinstance(o, BaseException)]  # no call lost
        recorded: Counter[str] = Counter()
        for message in outcomes:
            meta = message.response_metadata["best_of_n"]  # type: ignore[attr-defined]
            assert meta["n_succeeded"] == 8 or meta["retry_waves"] == best.candidate_retries
            assert meta["n_attempted"] == meta["n_succeeded"] + len(meta["failures"])
            recorded.update(_kind(failure) for failure in meta["failures"])
        injected = server.faults_by_kind
        # what the client saw of each injected fault, one for one
        for kind in ("500", "429", "malformed"):
            assert recorded[kind] == injected[kind], kind
        # a hang ends with no answer, so it is always a failure; on a busy machine a slow
        # answer may time out too, so timeouts are at least the injected hangs
        assert recorded["timeout"] >= injected["timeout"]
        assert set(recorded) <= {"500", "429", "malformed", "timeout"}
        assert 0.25 < server.faults_injected / server.request_count < 0.35
        print(f"\n500 calls: all answered, {dict(recorded)} recorded, {dict(injected)} injected")


@pytest.mark.parametrize("native", [True, False])
async def test_300_calls_with_30_percent_server_errors_lose_none(
    caption_answers: list[str], model: RewardModel, native: bool
) -> None:
    """ChatOpenAI with its default retries, 30% HTTP 500, concurrency 50: with native n one
    failed request carries all 8 candidates, and the engine asks again for them."""
    with OpenAICompatibleServer(answers=caption_answers, failure_rate=0.3, seed=8) as server:
        llm = ChatOpenAI(base_url=server.base_url, api_key="unused", model="loopback")
        best = BestOfN(
            llm=llm,
            reward_model=model,
            n=8,
            native_n=native,
            max_concurrency=50,
            candidate_retries=4,
        )
        outcomes = await _calls(best, 300, at_once=50)
        lost = [o for o in outcomes if isinstance(o, BaseException)]
        assert not lost, lost[:3]
        answered = [o.response_metadata["best_of_n"] for o in outcomes]  # type: ignore[union-attr]
        assert all(
            meta["n_succeeded"] == 8 or meta["retry_waves"] == best.candidate_retries
            for meta in answered
        )
        successes = sum(meta["requests"] - meta["failed_requests"] for meta in answered)
        # every request the server answered without a fault delivered candidates to a call
        assert server.request_count - server.faults_injected == successes
        print(
            f"\n300 calls (native n={native}): 300 answered, "
            f"{sum(meta['retry_waves'] for meta in answered)} retry waves"
        )


def _kind(failure: str) -> str:
    """The injected fault a recorded failure stands for (langchain-openai wraps the client's
    exceptions; the messages carry the status)."""
    for marker, kind in (
        ("Error code: 500", "500"),
        ("Error code: 429", "429"),
        ("timed out", "timeout"),
        ("JSONDecodeError", "malformed"),
    ):
        if marker in failure:
            return kind
    return failure


async def _calls(best: BestOfN, count: int, at_once: int = 50) -> list[object]:
    outcomes: list[object] = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", DUPLICATE_CANDIDATES, UserWarning)
        for _ in range(count // at_once):
            outcomes += await asyncio.gather(
                *(best.ainvoke(PROMPT) for _ in range(at_once)), return_exceptions=True
            )
    return outcomes


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
            warnings.filterwarnings("ignore", DUPLICATE_CANDIDATES, UserWarning)
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
            warnings.filterwarnings("ignore", DUPLICATE_CANDIDATES, UserWarning)
            results = list(pool.map(lambda _: best.invoke(PROMPT), range(20)))
        assert len(results) == 20 and 2 <= server.max_in_flight <= 5  # concurrent, bounded


@settings(WITH_FIXTURES, max_examples=40)
@given(query=st.text(max_size=2000), k=st.integers(min_value=1, max_value=5))
def test_fuzz_selector(model: RewardModel, query: str, k: int) -> None:
    selector = RewardExampleSelector(
        examples=[{"input": "a\x00b", "output": "\u202e\ud7ff"}, {"input": "", "output": ""}],
        reward_model=model,
    )
    assert len(selector.rank(query, k)) == min(k, 2)


@given(st.dictionaries(st.sampled_from(["input", "chosen", "rejected"]), st.text() | st.integers()))
def test_fuzz_pairs(record: dict) -> None:
    valid = len(record) == 3 and all(isinstance(v, str) for v in record.values())
    if valid:
        pair = parse_pair(record)
        assert (pair.input, pair.chosen, pair.rejected) == (
            record["input"],
            record["chosen"],
            record["rejected"],
        )
    else:
        with pytest.raises(ValueError):
            parse_pair(record)


def test_megabyte_unicode_input_is_truncated(model: RewardModel) -> None:
    huge = "\U0001f600 mixed テキスト \x07" * 60_000  # ~1 MB
    scores = model.score(huge, [huge, ""])
    assert scores.shape == (2,) and np.isfinite(scores).all()
    _, counts = model.encoder.encode([huge])
    assert counts[0] <= model.card.max_tokens


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
