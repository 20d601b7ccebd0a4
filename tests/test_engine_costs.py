"""Every request billed for a reason: retries, native n with streaming, interrupts, the one limit,
the cache key. Real HTTP against the loopback server, which counts what it was asked."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatResult
from langchain_core.runnables import ConfigurableField, RunnableLambda
from langchain_core.tracers.base import BaseTracer
from langchain_openai import ChatOpenAI

from langchain_irl import BestOfN, RewardModel
from langchain_irl.chat_models.identity import stable_identity
from langchain_irl.engine import ConcurrencyLimit, is_retryable
from langchain_irl.engine.options import SpeculativeRejection
from langchain_irl.testing.server import OpenAICompatibleServer
from tests.conftest import BUNDLED_MODEL, ROOT

PROMPT = "A well-dressed man complaining about his fuming soup to a server"


def _llm(server: OpenAICompatibleServer, **params: Any) -> ChatOpenAI:
    return ChatOpenAI(base_url=server.base_url, api_key="unused", model="loopback", **params)


# -- retries -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "error"),
    [("400", openai.BadRequestError), ("401", openai.AuthenticationError)],
)
@pytest.mark.parametrize("native", [True, False])
def test_a_client_error_is_raised_at_once_without_retries(
    fault: str, error: type[Exception], native: bool, model: RewardModel
) -> None:
    with OpenAICompatibleServer(failure_rate=1.0, faults=[fault]) as server:
        best = BestOfN(
            llm=_llm(server), reward_model=model, n=8, native_n=native, max_concurrency=1
        )
        with pytest.raises(error, match="injected"):
            best.invoke(PROMPT)
        # one request: ChatOpenAI does not retry a 4xx, and neither does the engine
        assert server.request_count == 1


async def test_a_client_error_stops_the_candidates_in_flight(model: RewardModel) -> None:
    with OpenAICompatibleServer(failure_rate=1.0, faults=["400"]) as server:
        best = BestOfN(llm=_llm(server), reward_model=model, n=8, native_n=False)
        with pytest.raises(openai.BadRequestError):
            await best.ainvoke(PROMPT)
        assert server.request_count <= 8  # the first wave at most: no retry wave


class _Broken(BaseChatModel):
    """A chat model with a bug: every call raises the same TypeError."""

    calls: int = 0

    @property
    def _llm_type(self) -> str:
        return "broken"

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        self.calls += 1
        raise TypeError("a bug, not a bad moment")


def test_a_bug_is_raised_at_once(model: RewardModel) -> None:
    broken = _Broken()
    best = BestOfN(llm=broken, reward_model=model, n=4, max_concurrency=1, candidate_retries=5)
    with pytest.raises(TypeError, match="a bug"):
        best.invoke(PROMPT)
    assert broken.calls == 1


def test_what_is_retryable() -> None:
    with OpenAICompatibleServer(failure_rate=1.0, faults=["500"]) as server:
        try:
            _llm(server, max_retries=0).invoke("hi")
        except openai.InternalServerError as error:
            assert is_retryable(error)
    assert is_retryable(TimeoutError()) and is_retryable(ConnectionResetError())
    assert not is_retryable(ValueError("bad argument")) and not is_retryable(KeyError("x"))

    class ResourceExhausted(Exception):  # google-api-core keeps the HTTP status in `code`
        code = 429

    class InvalidArgument(Exception):
        code = 400

    class ClientError(Exception):  # botocore keeps it in its response dict
        response = {"ResponseMetadata": {"HTTPStatusCode": 503}}  # noqa: RUF012

    class UnsupportedProtocol(Exception):  # httpx: a bad URL fails the same way again
        pass

    assert is_retryable(ResourceExhausted()) and is_retryable(ClientError())
    assert not is_retryable(InvalidArgument()) and not is_retryable(UnsupportedProtocol())


# -- native n with a streaming model -------------------------------------------------------------


def test_native_n_with_a_streaming_model_keeps_the_choices_apart(model: RewardModel) -> None:
    answers = [f"Answer number {i}, with several words in it." for i in range(12)]
    with OpenAICompatibleServer(answers=answers) as server:
        llm = _llm(server, streaming=True)
        best = BestOfN(llm=llm, reward_model=model, n=8, return_all=True)
        result = best.generate([[HumanMessage(PROMPT)]])
        texts = [g.text for g in result.generations[0]]
        assert len(texts) == 8 == len(set(texts)) and set(texts) <= set(answers)
        assert server.request_count == 1 and server.requests[0]["n"] == 8
        assert not server.requests[0].get("stream")
        # the server interleaves a stream of n choices, as OpenAI does; merged, they'd be garbled
        with pytest.raises(ValueError, match="n must be 1 when streaming"):
            _llm(server, streaming=True, n=2)


# -- interrupts ----------------------------------------------------------------------------------

LONG = [" ".join(f"w{i}-{j}" for j in range(400)) for i in range(4)]
NO_CUT = SpeculativeRejection(checkpoints=(1000,))  # nothing is cut before the interrupt


@pytest.fixture
def slow_server() -> Iterator[OpenAICompatibleServer]:
    with OpenAICompatibleServer(answers=LONG, token_rate=50) as server:
        yield server


def _all_closed(server: OpenAICompatibleServer, count: int) -> bool:
    """Whether the server saw `count` streams closed early. It notices a closed stream at its
    next write; the wait is long (bounded at 2 minutes) so that a loaded machine passes too."""
    for _ in range(2400):
        if server.streams_closed_early >= count:
            return True
        time.sleep(0.05)
    return False


class _Reading(BaseTracer):
    """Notes which candidate streams the client has read a token of: the interrupt then comes
    while every stream is being written, on a busy machine too."""

    def __init__(self) -> None:
        super().__init__()
        self.reading: set[Any] = set()
        self.all_reading = threading.Event()

    def on_llm_new_token(self, token: str, *, run_id: Any, **kwargs: Any) -> Any:
        self.reading.add(run_id)
        if len(self.reading) >= 4:
            self.all_reading.set()

    def _persist_run(self, run: Any) -> None:
        pass


async def test_a_cancelled_async_call_closes_every_stream(
    slow_server: OpenAICompatibleServer, model: RewardModel
) -> None:
    best = BestOfN(llm=_llm(slow_server), reward_model=model, n=4, speculative=NO_CUT)
    reading = _Reading()
    call = asyncio.ensure_future(best.ainvoke(PROMPT, {"callbacks": [reading]}))
    assert await asyncio.to_thread(reading.all_reading.wait, 60)
    call.cancel()  # as asyncio.wait_for does at its timeout
    with pytest.raises(asyncio.CancelledError):
        await call
    assert slow_server.request_count == 4
    closed = await asyncio.to_thread(_all_closed, slow_server, 4)  # the loop goes on meanwhile
    assert closed, slow_server.streams_closed_early
    assert slow_server.tokens_sent < 4 * 400 / 2


class _Alarm(Exception):
    pass


def test_an_interrupted_sync_call_closes_every_stream(
    slow_server: OpenAICompatibleServer, model: RewardModel
) -> None:
    """A signal (Ctrl-C, an alarm) interrupts a sync call: its streams are closed too."""
    best = BestOfN(llm=_llm(slow_server), reward_model=model, n=4, speculative=NO_CUT)
    reading = _Reading()

    def alarm(*_: object) -> None:
        raise _Alarm

    def interrupt_once_all_read() -> None:
        if reading.all_reading.wait(60):
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGALRM)

    previous = signal.signal(signal.SIGALRM, alarm)
    interrupter = threading.Thread(target=interrupt_once_all_read)
    try:
        interrupter.start()
        with pytest.raises(_Alarm):
            best.invoke(PROMPT, {"callbacks": [reading]})
    finally:
        interrupter.join()
        signal.signal(signal.SIGALRM, previous)
    assert slow_server.request_count == 4
    assert _all_closed(slow_server, 4), slow_server.streams_closed_early


# -- one limit per instance ----------------------------------------------------------------------


def test_one_limit_across_threads_loops_and_configured_copies(
    caption_answers: list[str], model: RewardModel
) -> None:
    with OpenAICompatibleServer(answers=caption_answers, latency=0.05) as server:
        best = BestOfN(
            llm=_llm(server, max_retries=0),
            reward_model=model,
            n=4,
            native_n=False,
            max_concurrency=3,
        )
        configurable = best.configurable_fields(n=ConfigurableField(id="n"))

        def sync_calls() -> None:
            for _ in range(3):
                best.invoke(PROMPT)

        def configured_calls() -> None:
            for _ in range(3):
                configurable.invoke(PROMPT, {"configurable": {"n": 5}})

        def async_calls() -> None:  # an event loop of its own, in its own thread
            async def calls() -> None:
                await asyncio.gather(*(best.ainvoke(PROMPT) for _ in range(3)))

            asyncio.run(calls())

        workers = [threading.Thread(target=f) for f in (sync_calls, sync_calls)]
        workers += [threading.Thread(target=configured_calls), threading.Thread(target=async_calls)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert server.request_count == 3 * 4 * 3 + 3 * 5
        assert 2 <= server.max_in_flight <= 3  # concurrent, and never above the one bound
        assert best.concurrency_limit.in_flight == 0


def test_a_limit_can_bound_several_instances(
    caption_answers: list[str], model: RewardModel
) -> None:
    shared = ConcurrencyLimit()
    with OpenAICompatibleServer(answers=caption_answers, latency=0.05) as server:
        models = [
            BestOfN(
                llm=_llm(server),
                reward_model=model,
                n=4,
                native_n=False,
                max_concurrency=2,
                concurrency_limit=shared,
            )
            for _ in range(2)
        ]
        workers = [threading.Thread(target=m.invoke, args=(PROMPT,)) for m in models * 2]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert server.request_count == 16 and server.max_in_flight <= 2
        assert shared.peak == 2


def test_a_cancelled_waiter_passes_its_slot_on() -> None:
    limit = ConcurrencyLimit()

    async def scenario() -> None:
        async with limit.aheld(1):
            waiting = asyncio.ensure_future(limit.aheld(1).__aenter__())
            await asyncio.sleep(0.01)
            waiting.cancel()
        async with limit.aheld(1):  # the slot is free again, not leaked to the cancelled waiter
            assert limit.in_flight == 1

    asyncio.run(scenario())
    assert limit.in_flight == 0


# -- the cache key -------------------------------------------------------------------------------


def test_options_that_do_not_change_the_answer_share_cache_entries(
    caption_answers: list[str], model: RewardModel
) -> None:
    cache = InMemoryCache()
    with OpenAICompatibleServer(answers=caption_answers) as server:
        llm = _llm(server)
        first = BestOfN(llm=llm, reward_model=model, n=3, cache=cache, max_concurrency=2)
        again = BestOfN(
            llm=_llm(server, max_retries=7, timeout=30),
            reward_model=model,
            n=3,
            cache=cache,
            max_concurrency=9,
            candidate_retries=0,
        )
        assert again.invoke(PROMPT).text == first.invoke(PROMPT).text
        assert server.request_count == 1  # native n: one request, then a cache hit
        other = BestOfN(llm=llm, reward_model=model, n=4, cache=cache)
        other.invoke(PROMPT)
        assert server.request_count == 2  # n changes the answer: its own entry


def test_identity_holds_no_address() -> None:
    llm = ChatOpenAI(base_url="http://127.0.0.1:9/v1", api_key="unused", model="m")
    wrapped = llm.bind(stop=["\n"]).with_retry().with_fallbacks([llm])
    identity = json.dumps(stable_identity(wrapped))
    assert "0x" not in identity and "process_local_id" not in identity
    assert stable_identity(wrapped) == stable_identity(
        ChatOpenAI(base_url="http://127.0.0.1:9/v1", api_key="unused", model="m")
        .bind(stop=["\n"])
        .with_retry()
        .with_fallbacks([llm])
    )
    assert stable_identity(llm.bind(stop=["\n"])) != stable_identity(llm.bind(stop=["."]))
    elsewhere = ChatOpenAI(base_url="http://127.0.0.1:10/v1", api_key="unused", model="m")
    assert stable_identity(elsewhere) != stable_identity(llm)  # another endpoint, another model
    patient = ChatOpenAI(
        base_url="http://127.0.0.1:9/v1", api_key="unused", model="m", max_retries=9, timeout=60
    )
    assert stable_identity(patient) == stable_identity(llm)  # asked harder, answers the same
    configurable = llm.configurable_fields(model_name=ConfigurableField(id="model"))
    assert "process_local_id" in json.dumps(stable_identity(configurable))  # resolved per call
    plain = RunnableLambda(lambda messages: AIMessage("hi"))  # a Runnable, not Serializable
    assert "process_local_id" in json.dumps(stable_identity(llm.with_fallbacks([plain])))


_CACHED_CALL = """
import sys
from langchain_community.cache import SQLiteCache
from langchain_core.globals import set_llm_cache
from langchain_openai import ChatOpenAI
from langchain_irl import BestOfN, RewardModel

set_llm_cache(SQLiteCache(database_path=sys.argv[2]))
llm = ChatOpenAI(base_url=sys.argv[1], api_key="unused", model="loopback").with_retry()
best = BestOfN(llm=llm, reward_model=RewardModel.load(sys.argv[3]), n=3)
print(best.invoke("A well-dressed man complaining about his fuming soup to a server").text)
"""


def test_a_sqlite_cache_is_hit_from_another_process(
    caption_answers: list[str], tmp_path: Path
) -> None:
    pytest.importorskip("langchain_community")
    database = tmp_path / "cache.sqlite"
    with OpenAICompatibleServer(answers=caption_answers) as server:

        def call() -> str:
            done = subprocess.run(
                [sys.executable, "-c", _CACHED_CALL, server.base_url, str(database), BUNDLED_MODEL],
                capture_output=True,
                text=True,
                cwd=ROOT,
                check=True,
            )
            return done.stdout

        first = call()
        requests = server.request_count
        assert requests == 3  # a wrapped model (with_retry): one request per candidate
        assert call() == first and server.request_count == requests  # the second: no request


# -- what a call reports -------------------------------------------------------------------------


def test_metadata_and_usage_live_in_one_place(
    caption_answers: list[str], model: RewardModel
) -> None:
    with OpenAICompatibleServer(answers=caption_answers) as server:
        best = BestOfN(llm=_llm(server), reward_model=model, n=3, native_n=False)
        result = best.generate([[HumanMessage(PROMPT)]])
        (generation,) = result.generations[0]
        message = generation.message
        assert "best_of_n" in message.response_metadata
        assert "best_of_n" not in (generation.generation_info or {})
        assert "best_of_n" not in (result.llm_output or {})
        # the winner's own provider count is not left beside the call's total
        assert "token_usage" not in message.response_metadata
        usage = message.usage_metadata  # type: ignore[attr-defined]
        assert usage is not None and usage["output_tokens"] == server.tokens_sent
