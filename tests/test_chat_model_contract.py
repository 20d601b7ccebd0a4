"""BestOfN keeps the chat-model contract: caches, copies, structured output, usage, streaming,
any chat-model Runnable, scoring each text once, warnings at the user's line."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.outputs import ChatGeneration
from langchain_core.runnables import ConfigurableField
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from langchain_irl import BestOfN, RewardModel
from langchain_irl.chat_models.best_of_n import as_chunk
from langchain_irl.testing import OpenAICompatibleServer
from tests.conftest import DUPLICATE_CANDIDATES

PROMPT = "A well-dressed man complaining about his fuming soup to a server"


class Weather(BaseModel):
    """Weather in a city."""

    city: str
    degrees: int


@pytest.fixture(scope="module")
def server(caption_answers: list[str]) -> Iterator[OpenAICompatibleServer]:
    with OpenAICompatibleServer(answers=caption_answers[:40], seed=11) as running:
        yield running


def chat_openai(server: OpenAICompatibleServer, **params: object) -> ChatOpenAI:
    return ChatOpenAI(
        base_url=server.base_url, api_key="unused", model="loopback", max_retries=0, **params
    )


def test_differently_configured_instances_do_not_share_cache_entries(
    server: OpenAICompatibleServer, model: RewardModel
) -> None:
    cache = InMemoryCache()
    llm = chat_openai(server)
    plain = BestOfN(llm=llm, reward_model=model, n=2, cache=cache)
    for update in (
        {"threshold": 50.0},
        {"return_all": True},
        {"temperature": 0.3},
        {"selection_seed": 4},
    ):
        other = plain.model_copy(update=update)
        assert other._get_llm_string() != plain._get_llm_string(), update
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", DUPLICATE_CANDIDATES, UserWarning)
        first = plain.invoke(PROMPT)
        server.reset_counts()
        again = plain.invoke(PROMPT)  # a cache hit: no request
        assert server.request_count == 0 and again.content == first.content
        plain.model_copy(update={"threshold": 50.0, "wave_size": 1}).invoke(PROMPT)
        assert server.request_count >= 1  # another configuration: not served from the cache


def test_model_copy_derives_the_inner_model_and_the_limit(
    server: OpenAICompatibleServer, model: RewardModel
) -> None:
    best = BestOfN(llm=chat_openai(server), reward_model=model, n=2, native_n=True)
    copy = best.model_copy(update={"temperature": 0.9, "max_concurrency": 7})
    assert copy._inner.temperature == 0.9 and copy.max_concurrency == 7
    assert best._inner.temperature is None and best.max_concurrency == 16
    assert copy.concurrency_limit is best.concurrency_limit  # one count of requests in flight
    server.reset_counts()
    copy.invoke(PROMPT)
    assert server.requests[-1]["temperature"] == 0.9


def test_structured_output_honours_the_method(
    server: OpenAICompatibleServer, model: RewardModel
) -> None:
    best = BestOfN(llm=chat_openai(server), reward_model=model, n=3)
    server.reset_counts()
    # the server fills a schema the same way every time: the candidates are equal
    with pytest.warns(UserWarning, match="2 of 3 candidates were identical"):
        weather = best.with_structured_output(Weather, method="json_schema").invoke("Paris?")
    assert weather == Weather(city="Paris?", degrees=3)
    assert all(r["response_format"]["type"] == "json_schema" for r in server.requests)
    assert all("tools" not in r for r in server.requests)  # not downgraded to tool calling
    raw = best.with_structured_output(Weather, method="json_schema", include_raw=True).invoke("x")
    assert "best_of_n" in raw["raw"].response_metadata and raw["parsed"].degrees == 3
    fake = BestOfN(llm=FakeListChatModel(responses=["{}"]), reward_model=model, n=2)
    with pytest.raises(NotImplementedError, match="no structured output method 'json_schema'"):
        fake.with_structured_output(Weather, method="json_schema")


def test_usage_is_reported_counted_by_the_inner_model_or_unknown(model: RewardModel) -> None:
    counting = FakeListChatModel(responses=["one two", "three"], custom_get_token_ids=_words)
    message = BestOfN(llm=counting, reward_model=model, n=2).invoke(PROMPT)
    meta = message.response_metadata["best_of_n"]
    assert meta["usage_counted_by"] == "inner model tokenizer"
    assert message.usage_metadata is not None
    assert message.usage_metadata["output_tokens"] == 3  # "one two" + "three", its own count
    mute = FakeListChatModel(responses=["one two", "three"])
    message = BestOfN(llm=mute, reward_model=model, n=2).invoke(PROMPT)
    assert message.usage_metadata is None
    assert message.response_metadata["best_of_n"]["usage_counted_by"] is None


def _words(text: str) -> list[int]:
    return list(range(len(text.split())))


def test_streamed_chunk_keeps_every_field() -> None:
    message = AIMessage(
        content="hi",
        additional_kwargs={"refusal": None, "extra": 1},
        name="bot",
        id="m1",
        response_metadata={"best_of_n": {"chosen_index": 0}},
        tool_calls=[{"name": "f", "args": {"a": 1}, "id": "c1", "type": "tool_call"}],
        invalid_tool_calls=[
            {"name": "g", "args": "nope", "id": "c2", "error": "bad", "type": "invalid_tool_call"}
        ],
    )
    chunk = as_chunk(ChatGeneration(message=message)).message
    assert chunk.additional_kwargs == message.additional_kwargs and chunk.name == "bot"
    assert [c["name"] for c in chunk.tool_calls] == ["f"]
    assert [c["name"] for c in chunk.invalid_tool_calls] == ["g"]
    assert chunk.text == "hi" and chunk.id == "m1"


def test_streaming_returns_the_winner_content(
    server: OpenAICompatibleServer, model: RewardModel
) -> None:
    best = BestOfN(llm=chat_openai(server), reward_model=model, n=3, return_all=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", DUPLICATE_CANDIDATES, UserWarning)
        chunks = list(best.stream(PROMPT))
    meta = chunks[-1].response_metadata["best_of_n"]
    assert "".join(c.text for c in chunks) == meta["candidates"][meta["chosen_index"]]


@pytest.mark.parametrize("wrap", ["bind", "with_retry", "configurable"])
def test_any_chat_model_runnable(
    server: OpenAICompatibleServer, model: RewardModel, wrap: str
) -> None:
    llm = chat_openai(server)
    inner = {
        "bind": lambda: llm.bind(stop=["zzz"]),
        "with_retry": lambda: llm.with_retry(stop_after_attempt=2),
        "configurable": lambda: llm.configurable_fields(
            temperature=ConfigurableField(id="temperature")
        ),
    }[wrap]()
    server.reset_counts()
    best = BestOfN(llm=inner, reward_model=model, n=3, return_all=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", DUPLICATE_CANDIDATES, UserWarning)
        message = best.invoke(PROMPT)
    meta = message.response_metadata["best_of_n"]
    assert meta["n_succeeded"] == 3 and message.content in meta["candidates"]
    if wrap == "bind":  # a plain binding keeps native n: one request, the binding's kwargs
        assert server.request_count == 1 and server.requests[0]["stop"] == ["zzz"]
    else:  # anything else is called as it is, once per candidate
        assert server.request_count == 3


def test_identical_candidates_are_scored_once_and_warned_once_at_the_callers_line(
    model: RewardModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    scored: list[int] = []
    real_score = type(model.scorer(PROMPT)).score_candidates

    def counting(self, candidates):  # type: ignore[no-untyped-def]
        scored.append(len(candidates))
        return real_score(self, candidates)

    monkeypatch.setattr(type(model.scorer(PROMPT)), "score_candidates", counting)
    same = FakeListChatModel(responses=["Same caption."])
    best = BestOfN(llm=same, reward_model=model, n=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        best.invoke(PROMPT)
        best.invoke(PROMPT)
    assert sum(scored) == 2  # one text per call, scored once each time
    relevant = [w for w in caught if "identical" in str(w.message)]
    assert len(relevant) == 1  # once per instance
    assert relevant[0].filename == __file__  # pointing at this test's line, not the library


def test_forwarding_into_a_runnable_that_is_not_a_chat_model_is_refused(
    server: OpenAICompatibleServer, model: RewardModel
) -> None:
    with pytest.raises(ValueError, match="cannot forward"):
        BestOfN(llm=chat_openai(server).with_retry(), reward_model=model, temperature=0.5)
    with pytest.raises(ValueError, match="native_n=True needs"):
        BestOfN(llm=chat_openai(server).with_retry(), reward_model=model, native_n=True)


def test_same_call_same_answer_with_a_seeded_softmax(model: RewardModel) -> None:
    answers = ["I'm going to need a bigger spoon.", "Waiter!", "Soup of the day: lava.", "Hot."]
    picks = set()
    for _ in range(5):
        llm = FakeListChatModel(responses=answers)
        best = BestOfN(
            llm=llm,
            reward_model=model,
            n=4,
            selection="softmax",
            selection_seed=3,
            max_concurrency=1,
        )
        picks.add(best.invoke([HumanMessage(PROMPT)]).text)
    assert len(picks) == 1


def test_selection_rules_pick_what_they_promise(model: RewardModel) -> None:
    from langchain_irl.engine.selection import choose

    rewards = np.array([0.0, 3.0, 1.0])
    embeddings = np.eye(3, dtype=np.float32)
    embeddings[2] = embeddings[0]  # candidates 0 and 2 agree; 1 is a lone outlier
    assert choose(rewards, embeddings, "argmax") == 1
    counts = np.bincount(
        [
            choose(rewards, embeddings, "softmax", temperature=1.0, rng=np.random.default_rng(s))
            for s in range(2000)
        ],
        minlength=3,
    )
    expected = np.exp(rewards) / np.exp(rewards).sum()
    assert np.abs(counts / 2000 - expected).max() < 0.05  # sampled in proportion to exp(r)
    # regularized: reward + weight * mean similarity to the others; a large weight prefers the
    # consensus (2 agrees with 0) over the outlier
    assert choose(rewards, embeddings, "regularized", proximity_weight=10.0) == 2
    assert choose(rewards, embeddings, "regularized", proximity_weight=0.0) == 1
