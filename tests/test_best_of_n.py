"""BestOfN against a real ChatOpenAI talking to a real loopback OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import langchain_core.tracers.langchain
import langsmith
import numpy as np
import openai
import pytest
from langchain_core.callbacks import UsageMetadataCallbackHandler, get_usage_metadata_callback
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import ConfigurableField
from langchain_core.tracers.base import BaseTracer
from langchain_core.tracers.context import tracing_v2_enabled
from langchain_core.tracers.schemas import Run
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, PrivateAttr

from langchain_irl import BestOfN, RewardModel
from langchain_irl.reward_model.rendering import render_output
from langchain_irl.testing.server import OpenAICompatibleServer
from tests.conftest import DUPLICATE_CANDIDATES

CARTOON = "People stepping over man lying on the sidewalk."
PROMPT = [SystemMessage("Write a funny caption for the cartoon."), HumanMessage(CARTOON)]


@pytest.fixture(scope="module")
def server(caption_answers: list[str]) -> Iterator[OpenAICompatibleServer]:
    with OpenAICompatibleServer(answers=caption_answers, seed=1) as running:
        yield running


def chat_openai(server: OpenAICompatibleServer, **params: object) -> ChatOpenAI:
    return ChatOpenAI(
        base_url=server.base_url, api_key="unused", model="loopback", max_retries=0, **params
    )


def _check_winner(message, model: RewardModel, native: bool) -> dict:  # type: ignore[no-untyped-def]
    meta = message.response_metadata["best_of_n"]
    texts = meta["candidates"]
    # a score depends on (prompt, candidate, model) only: scored alone, each gives the same
    expected = np.array([model.score(CARTOON, [text])[0] for text in texts])
    np.testing.assert_allclose(meta["rewards"], expected, atol=1e-6)
    assert meta["chosen_index"] == int(np.argmax(expected))
    assert message.content == texts[meta["chosen_index"]]
    return meta


@pytest.mark.parametrize("native", [True, False])
def test_sync_winner_is_the_reward_argmax(
    server: OpenAICompatibleServer, model: RewardModel, native: bool
) -> None:
    server.reset_counts()
    best = BestOfN(
        llm=chat_openai(server), reward_model=model, n=8, native_n=native, return_all=True
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", DUPLICATE_CANDIDATES, UserWarning)
        message = best.invoke(PROMPT)
    meta = _check_winner(message, model, native)
    assert meta["n_requested"] == 8 and meta["n_succeeded"] == 8
    assert meta["requests"] == (1 if native else 8) == len(server.requests)
    assert all(r.get("n", 1) == (8 if native else 1) for r in server.requests)
    assert meta["reward_model"] == "caption-humor"


@pytest.mark.parametrize("native", [True, False])
async def test_async_winner_is_the_reward_argmax(
    server: OpenAICompatibleServer, model: RewardModel, native: bool
) -> None:
    best = BestOfN(
        llm=chat_openai(server), reward_model=model, n=6, native_n=native, return_all=True
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", DUPLICATE_CANDIDATES, UserWarning)
        message = await best.ainvoke(PROMPT)
    _check_winner(message, model, native)


def test_usage_native_n_is_counted_once(server: OpenAICompatibleServer, model: RewardModel) -> None:
    server.reset_counts()
    message = BestOfN(llm=chat_openai(server), reward_model=model, n=5, native_n=True).invoke(
        PROMPT
    )
    (request,) = server.requests
    prompt_tokens = sum(len(m["content"].split()) for m in request["messages"])
    candidates = len(message.response_metadata["best_of_n"]["rewards"])
    assert candidates == 5
    assert message.usage_metadata["input_tokens"] == prompt_tokens  # billed once, not 5 times
    assert message.usage_metadata["output_tokens"] > len(message.content.split())


def test_usage_concurrent_is_summed(server: OpenAICompatibleServer, model: RewardModel) -> None:
    server.reset_counts()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", DUPLICATE_CANDIDATES, UserWarning)
        message = BestOfN(
            llm=chat_openai(server), reward_model=model, n=4, native_n=False, return_all=True
        ).invoke(PROMPT)
    prompt_tokens = sum(len(m["content"].split()) for m in server.requests[0]["messages"])
    texts = message.response_metadata["best_of_n"]["candidates"]
    assert message.usage_metadata["input_tokens"] == 4 * prompt_tokens
    assert message.usage_metadata["output_tokens"] == sum(len(t.split()) for t in texts)


def test_drop_in_inside_a_chain(server: OpenAICompatibleServer, model: RewardModel) -> None:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Write a funny caption for the cartoon."), ("human", "{cartoon}")]
    )
    chain = prompt | BestOfN(llm=chat_openai(server), reward_model=model, n=4) | StrOutputParser()
    answers = chain.batch([{"cartoon": CARTOON}, {"cartoon": "A cat at a board meeting."}])
    assert len(answers) == 2 and all(isinstance(a, str) and a for a in answers)


def test_some_failures_are_recorded_not_fatal(
    caption_answers: list[str], model: RewardModel
) -> None:
    with OpenAICompatibleServer(answers=caption_answers, failure_rate=0.5, seed=3) as server:
        model_ = BestOfN(llm=chat_openai(server), reward_model=model, n=8, native_n=False)
        message = model_.invoke(PROMPT)
        meta = message.response_metadata["best_of_n"]
        assert server.faults_injected == len(meta["failures"]) > 0
        # failed candidates are asked for again, in retry waves, within the budget; the server
        # draws its faults in request order from its seed, so the retries recover all 8
        assert 1 <= meta["retry_waves"] <= model_.candidate_retries
        assert meta["n_succeeded"] == 8
        assert meta["n_attempted"] == 8 + len(meta["failures"])
        assert all("Error code: 500" in failure for failure in meta["failures"])


def test_all_failed_raises_the_underlying_error(
    caption_answers: list[str], model: RewardModel
) -> None:
    with OpenAICompatibleServer(answers=caption_answers, failure_rate=1.0) as server:
        for native in (True, False):
            model_ = BestOfN(llm=chat_openai(server), reward_model=model, n=3, native_n=native)
            with pytest.raises(openai.InternalServerError):
                model_.invoke(PROMPT)


def test_identical_candidates_are_deduplicated(
    server: OpenAICompatibleServer, model: RewardModel
) -> None:
    model_ = BestOfN(llm=chat_openai(server), reward_model=model, n=4, temperature=0)
    with pytest.warns(UserWarning, match="3 of 4 candidates were identical"):
        message = model_.invoke(PROMPT)
    assert message.response_metadata["best_of_n"]["n_duplicates"] == 3


def test_threshold_stops_early(server: OpenAICompatibleServer, model: RewardModel) -> None:
    server.reset_counts()
    model_ = BestOfN(
        llm=chat_openai(server),
        reward_model=model,
        n=16,
        threshold=0.0,
        wave_size=2,
        native_n=False,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", DUPLICATE_CANDIDATES, UserWarning)
        meta = model_.invoke(PROMPT).response_metadata["best_of_n"]
    assert meta["n_attempted"] == 2 and len(server.requests) == 2  # percentile >= 0: first wave
    strict = model_.model_copy(update={"threshold": 100.0})
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", DUPLICATE_CANDIDATES, UserWarning)
        meta = strict.invoke(PROMPT).response_metadata["best_of_n"]
    # waves of 2 until a candidate reaches the 100th percentile, else all 16
    expected = 16
    for end in range(2, 17, 2):
        if max(model.percentile(np.array(meta["rewards"][:end]))) >= 100.0:
            expected = end
            break
    assert meta["n_attempted"] == expected == len(meta["rewards"])


@pytest.mark.parametrize("selection", ["softmax", "regularized"])
def test_other_selection_rules(
    server: OpenAICompatibleServer, model: RewardModel, selection: str
) -> None:
    model_ = BestOfN(
        llm=chat_openai(server),
        reward_model=model,
        n=6,
        selection=selection,
        selection_seed=0,
        return_all=True,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", DUPLICATE_CANDIDATES, UserWarning)
        result = model_.generate([PROMPT])
    generations = result.generations[0]
    meta = generations[0].message.response_metadata["best_of_n"]
    assert meta["selection"] == selection
    assert len(generations) == meta["n_succeeded"]  # return_all: the winner, then the others
    assert generations[0].message.content == meta["candidates"][meta["chosen_index"]]


def test_configurable_fields(server: OpenAICompatibleServer, model: RewardModel) -> None:
    server.reset_counts()
    configurable = BestOfN(llm=chat_openai(server), reward_model=model, n=2).configurable_fields(
        n=ConfigurableField(id="n"), selection=ConfigurableField(id="selection")
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", DUPLICATE_CANDIDATES, UserWarning)
        message = configurable.invoke(
            PROMPT, config={"configurable": {"n": 5, "selection": "softmax"}}
        )
    meta = message.response_metadata["best_of_n"]
    assert meta["n_requested"] == 5 and meta["selection"] == "softmax"


def test_streaming_yields_the_winner(server: OpenAICompatibleServer, model: RewardModel) -> None:
    model_ = BestOfN(llm=chat_openai(server), reward_model=model, n=3)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", DUPLICATE_CANDIDATES, UserWarning)
        chunks = list(model_.stream(PROMPT))
    assert chunks and chunks[-1].chunk_position == "last"
    assert "best_of_n" in chunks[-1].response_metadata


class Weather(BaseModel):
    """Weather in a city."""

    city: str
    degrees: int


def test_tools_and_structured_output(server: OpenAICompatibleServer, model: RewardModel) -> None:
    server.reset_counts()
    model_ = BestOfN(llm=chat_openai(server), reward_model=model, n=3)
    # the server fills a tool's arguments the same way every time: the candidates are equal
    with pytest.warns(UserWarning, match="2 of 3 candidates were identical"):
        message = model_.bind_tools([Weather]).invoke("Weather in Paris?")
    assert message.tool_calls[0]["name"] == "Weather"
    assert all(r["tools"][0]["function"]["name"] == "Weather" for r in server.requests)
    meta = message.response_metadata["best_of_n"]
    expected = model.score("Weather in Paris?", [render_output(message)])[0]
    assert meta["chosen_reward"] == pytest.approx(expected, abs=1e-6)
    result = model_.with_structured_output(Weather, include_raw=True).invoke("Weather in Paris?")
    raw = result["raw"]
    chosen = raw.response_metadata["best_of_n"]["chosen_index"]
    assert result["parsed"] == Weather(**raw.tool_calls[0]["args"])  # parsed from the winner
    assert raw.tool_calls[0]["name"] == "Weather" and chosen in range(3)


def test_forwarded_parameters_reach_the_inner_model(
    server: OpenAICompatibleServer, model: RewardModel
) -> None:
    server.reset_counts()
    model_ = BestOfN(
        llm=chat_openai(server),
        reward_model=model,
        n=2,
        temperature=0.7,
        max_tokens=20,
        timeout=9,
        stop=["zzz"],
        max_retries=1,
        native_n=True,
    )
    model_.invoke(PROMPT)
    (request,) = server.requests
    assert request["temperature"] == 0.7 and request["stop"] == ["zzz"]
    assert request.get("max_completion_tokens", request.get("max_tokens")) == 20
    assert model_._inner.request_timeout == 9 and model_._inner.max_retries == 1


def test_candidates_are_child_runs_and_usage_is_counted_once(
    server: OpenAICompatibleServer, model: RewardModel
) -> None:
    """Tracers see each candidate as a child run; summing usage over the run tree, as tracing
    tools do, gives what the call cost once, not twice. Other handlers (a usage counter) see
    the call alone."""
    tracer, counter = _TreeUsage(), UsageMetadataCallbackHandler()
    model_ = BestOfN(llm=chat_openai(server), reward_model=model, n=3, native_n=False)
    server.reset_counts()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", DUPLICATE_CANDIDATES, UserWarning)
        message = model_.invoke(PROMPT, config={"callbacks": [tracer, counter]})
    (root,) = tracer.roots
    assert len(root.child_runs) == 3
    assert all("best-of-n-candidate" in (run.tags or []) for run in root.child_runs)
    assert message.usage_metadata is not None
    assert message.usage_metadata["output_tokens"] == server.tokens_sent  # every candidate
    assert _tree_output_tokens(root) == server.tokens_sent  # and once in the trace
    (counted,) = counter.usage_metadata.values()
    assert counted["output_tokens"] == server.tokens_sent  # and once by the counter


@pytest.mark.xfail(
    strict=True,
    reason="a handler LangChain adds to every call from a context variable "
    "(get_usage_metadata_callback, get_openai_callback) sees the candidates' calls too: no "
    "public langchain-core API keeps it from them",
)
def test_a_usage_callback_in_context_counts_the_call_once(
    server: OpenAICompatibleServer, model: RewardModel
) -> None:
    model_ = BestOfN(llm=chat_openai(server), reward_model=model, n=3, native_n=False)
    server.reset_counts()
    with warnings.catch_warnings(), get_usage_metadata_callback() as counter:
        warnings.filterwarnings("ignore", DUPLICATE_CANDIDATES, UserWarning)
        model_.invoke(PROMPT)
    (counted,) = counter.usage_metadata.values()
    assert counted["output_tokens"] == server.tokens_sent


class _LangSmithClient:
    """Stands in for LangSmith's client: keeps the runs a LangSmith tracer posts and patches."""

    def __init__(self) -> None:
        self.posted: list[dict[str, Any]] = []
        self.patched: list[dict[str, Any]] = []

    def create_run(self, **run: Any) -> None:
        self.posted.append(run)

    def update_run(self, run_id: Any, **run: Any) -> None:
        self.patched.append({"id": run_id, **run})


@pytest.mark.parametrize("enabled_by", ["tracing_v2_enabled", "tracing_context"])
def test_langsmith_gets_each_candidate_once_and_usage_on_the_call_only(
    server: OpenAICompatibleServer,
    model: RewardModel,
    monkeypatch: pytest.MonkeyPatch,
    enabled_by: str,
) -> None:
    """LangChain adds a LangSmith tracer to any call whose handlers hold none (the tracer of
    `tracing_v2_enabled`, or a new one when tracing is on, as with LANGSMITH_TRACING): the
    candidates' calls get no second one, which would post them again, with their usage."""
    client = _LangSmithClient()
    monkeypatch.setattr(langchain_core.tracers.langchain, "get_client", lambda: client)
    tracing = (
        tracing_v2_enabled(client=client)  # type: ignore[arg-type]
        if enabled_by == "tracing_v2_enabled"
        else langsmith.tracing_context(enabled=True)
    )
    model_ = BestOfN(llm=chat_openai(server), reward_model=model, n=3, native_n=False)
    with warnings.catch_warnings(), tracing:
        warnings.filterwarnings("ignore", DUPLICATE_CANDIDATES, UserWarning)
        message = model_.invoke(PROMPT)
    posted = [str(run["id"]) for run in client.posted]
    assert len(posted) == len(set(posted)) == 4  # the call and its 3 candidates, once each
    (call,) = [str(run["id"]) for run in client.posted if run.get("parent_run_id") is None]
    usage = {
        str(run["id"]): run["extra"].get("metadata", {}).get("usage_metadata")
        for run in client.patched
    }
    assert len(usage) == 4 and message.usage_metadata is not None
    assert usage.pop(call)["output_tokens"] == message.usage_metadata["output_tokens"]
    assert not any(usage.values())  # the candidates: counted by their parent


class _TreeUsage(BaseTracer):
    """Keeps finished traces, to sum token usage over their LLM runs as tracing tools do."""

    def __init__(self) -> None:
        super().__init__()
        self.roots: list[Run] = []

    def _persist_run(self, run: Run) -> None:
        self.roots.append(run)


def _tree_output_tokens(run: Run) -> int:
    own = 0
    if run.run_type == "llm":
        for generation in (run.outputs or {}).get("generations", [[]])[0]:
            message = generation.get("message") or {}
            usage = message.get("usage_metadata") or message.get("kwargs", {}).get("usage_metadata")
            own += (usage or {}).get("output_tokens", 0)
    return own + sum(_tree_output_tokens(child) for child in run.child_runs)


async def test_concurrency_bound(caption_answers: list[str], model: RewardModel) -> None:
    with OpenAICompatibleServer(answers=caption_answers, latency=0.05) as server:
        model_ = BestOfN(
            llm=chat_openai(server), reward_model=model, n=12, native_n=False, max_concurrency=3
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", DUPLICATE_CANDIDATES, UserWarning)
            await model_.ainvoke(PROMPT)
        assert server.max_in_flight == 3 and len(server.requests) == 12
        await asyncio.sleep(0)


def test_unknown_forwarded_parameter_is_a_clear_error(model: RewardModel) -> None:
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    with pytest.raises(ValueError, match="FakeListChatModel has no parameter 'temperature'"):
        BestOfN(llm=FakeListChatModel(responses=["a"]), reward_model=model, temperature=0.5)


def test_model_without_native_n_runs_concurrently(model: RewardModel) -> None:
    """A model without `n`: n calls, in flight together (the model counts them), and usage is
    unknown rather than another model's count."""
    slow = _SlowChat(responses=["Meow.", "I object!", "Purr-haps later."])
    message = BestOfN(llm=slow, reward_model=model, n=3).invoke(CARTOON)
    meta = message.response_metadata["best_of_n"]
    assert meta["requests"] == 3 and slow.peak == 3  # all three at once, not one by one
    assert meta["usage_counted_by"] is None and message.usage_metadata is None


class _SlowChat(BaseChatModel):
    """A chat model whose calls wait for each other: the peak of calls in flight is counted."""

    responses: list[str]
    peak: int = 0
    _running: int = 0
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _all_in: threading.Barrier | None = PrivateAttr(default=None)

    @property
    def _llm_type(self) -> str:
        return "slow"

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        with self._lock:
            self._running += 1
            self.peak = max(self.peak, self._running)
            index = self._running - 1
            if self._all_in is None:
                self._all_in = threading.Barrier(len(self.responses))
            barrier = self._all_in
        # passes once every call is in flight; if they come one by one it breaks after a while,
        # and the assertion on `peak` says so
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=30)
        with self._lock:
            self._running -= 1
        return ChatResult(generations=[ChatGeneration(message=AIMessage(self.responses[index]))])
