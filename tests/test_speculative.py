"""Speculative rejection: real streams from the loopback server, closed early, counted by it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI

from langchain_irl import BestOfN, RewardModel
from langchain_irl.engine.options import SpeculativeRejection
from langchain_irl.testing.server import OpenAICompatibleServer

PROMPT = "Explain how to make a good cup of coffee at home."
SCHEDULE = SpeculativeRejection(checkpoints=(8, 16), keep=0.5, min_survivors=2)
N = 8


def _answers() -> list[str]:
    """Eight long, different answers (300 words each): every cut stream is still being written."""
    return [
        " ".join(f"step{i} word{j} of a careful answer about coffee" for j in range(30))
        for i in range(N)
    ]


@pytest.fixture
def server() -> Iterator[OpenAICompatibleServer]:
    with OpenAICompatibleServer(answers_by_prompt={PROMPT: _answers()}, token_rate=400) as running:
        yield running


def _llm(server: OpenAICompatibleServer, **kwargs: object) -> ChatOpenAI:
    return ChatOpenAI(
        base_url=server.base_url, api_key="unused", model="loopback", stream_usage=True, **kwargs
    )


def _settled(server: OpenAICompatibleServer, expected: int) -> int:
    """The server's count of early-closed streams, once it has seen them all (it notices a
    closed stream at its next write)."""
    for _ in range(200):
        if server.streams_closed_early >= expected:
            break
        time.sleep(0.05)
    return server.streams_closed_early


def test_options() -> None:
    default = SpeculativeRejection()  # the sweep's pick (README)
    assert (default.checkpoints, default.keep, default.min_survivors) == ((12, 24, 48, 96), 0.5, 3)
    # of the prefixes scored at a checkpoint so far, the best ceil(keep x scored) go on
    assert [SpeculativeRejection(keep=0.5).passing(k) for k in range(1, 6)] == [1, 1, 2, 2, 3]
    assert [SpeculativeRejection(keep=0.25).passing(k) for k in (1, 4, 5)] == [1, 1, 2]
    # the streams to close: below that share, worst last
    scored = {3: 0.1, 7: 0.9, 4: 0.5, 9: -0.2, 1: 0.4}
    assert SpeculativeRejection(keep=0.5).losers(scored) == [3, 9]  # 3 of 5 go on
    assert SpeculativeRejection(keep=0.5).losers({5: 1.0}) == []
    for bad in ((), (16, 8), (0, 8), (8, 8)):
        with pytest.raises(ValueError, match="increasing positive"):
            SpeculativeRejection(checkpoints=bad)


def test_validated_at_construction(server: OpenAICompatibleServer, model: RewardModel) -> None:
    llm = _llm(server)
    assert BestOfN(llm=llm, reward_model=model, speculative=True).speculative == (
        SpeculativeRejection()
    )
    assert BestOfN(llm=llm, reward_model=model, speculative=False).speculative is None
    with pytest.raises(ValueError, match="does not combine"):
        BestOfN(llm=llm, reward_model=model, speculative=True, threshold=90)
    with pytest.raises(ValueError, match="keep"):
        BestOfN(llm=llm, reward_model=model, speculative={"keep": 0})


async def test_losers_are_closed_early_and_only_generated_tokens_count(
    server: OpenAICompatibleServer, model: RewardModel
) -> None:
    best = BestOfN(llm=_llm(server), reward_model=model, n=N, speculative=SCHEDULE)
    message = await best.ainvoke(PROMPT)
    meta = message.response_metadata["best_of_n"]
    candidates = meta["speculative"]["candidates"]
    cut = [c for c in candidates if c["cut_at"] is not None]
    survivors = [c for c in candidates if c["cut_at"] is None]
    assert cut and len(survivors) >= SCHEDULE.min_survivors
    for candidate in cut:  # scored at each checkpoint it reached, closed at one of them
        reached = sorted(t for t, _ in candidate["prefix_scores"])
        assert reached == list(SCHEDULE.checkpoints[: len(reached)])
        assert candidate["cut_at"] in reached
        assert candidate["overshoot"] == candidate["tokens"] - candidate["cut_at"] >= 0
    assert meta["speculative"]["median_overshoot"] is not None
    assert _settled(server, len(cut)) == len(cut)  # the server saw them close: it stopped there
    # the survivors ran to the end; the winner is a whole answer
    assert meta["n_succeeded"] == len(survivors) and message.text in _answers()
    generated = meta["speculative"]["generated_tokens"]
    assert generated == sum(c["tokens"] for c in candidates)
    # the server wrote what the client read (and a cut stream a little more before it noticed),
    # far from the 2,400 tokens of a best-of-8
    assert generated <= server.tokens_sent < N * 300 - sum(300 - c["tokens"] for c in cut) + N * 8
    usage = message.usage_metadata
    assert usage is not None and usage["output_tokens"] == generated
    assert meta["usage_counted_by"] == "provider + streamed chunks"


async def test_streams_past_the_bound_start_as_others_are_cut(
    server: OpenAICompatibleServer, model: RewardModel
) -> None:
    """No starvation: with 2 slots for 8 candidates, every candidate is streamed, the bound
    holds, and the streams that were cut made room for the others."""
    best = BestOfN(
        llm=_llm(server), reward_model=model, n=N, speculative=SCHEDULE, max_concurrency=2
    )
    meta = (await best.ainvoke(PROMPT)).response_metadata["best_of_n"]
    candidates = meta["speculative"]["candidates"]
    # the client never had more than 2 open (the server may see one more for a moment: it
    # notices a closed stream at its next write, after the next stream has started)
    assert server.request_count == N and best.concurrency_limit.peak == 2
    assert all(c["tokens"] > 0 for c in candidates)  # every one was written, none starved
    assert any(c["cut_at"] is not None for c in candidates)


def test_sync_invokes_and_failed_streams(model: RewardModel) -> None:
    """Sync calls, one after another: each failed stream is a failed candidate, and no call
    inherits a client bound to an earlier call's event loop ("Event loop is closed")."""
    with OpenAICompatibleServer(
        answers_by_prompt={PROMPT: _answers()}, token_rate=400, failure_rate=0.3, seed=2
    ) as server:
        best = BestOfN(
            llm=_llm(server, max_retries=0), reward_model=model, n=N, speculative=SCHEDULE
        )
        for _ in range(3):
            faults = server.faults_injected
            message = best.invoke(PROMPT)
            meta = message.response_metadata["best_of_n"]
            failed = [c for c in meta["speculative"]["candidates"] if c["failed"]]
            assert len(failed) == server.faults_injected - faults, meta["failures"]
            assert all("injected server error" in f for f in meta["failures"])
            assert message.text in _answers()
    assert server.faults_injected >= 1


def test_middleware_speculative(server: OpenAICompatibleServer, model: RewardModel) -> None:
    from langchain.agents import create_agent

    from langchain_irl.middleware import BestOfNMiddleware

    middleware = BestOfNMiddleware(model, n=N, speculative=SCHEDULE)
    agent = create_agent(_llm(server), [], middleware=[middleware])
    result = agent.invoke({"messages": [HumanMessage(PROMPT)]})
    message = result["messages"][-1]
    speculative = message.response_metadata["best_of_n"]["speculative"]
    cut = sum(c["cut_at"] is not None for c in speculative["candidates"])
    assert cut >= 1 and message.text in _answers()
    assert _settled(server, cut) == cut
