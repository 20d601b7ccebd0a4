"""Middleware inside a real create_agent, with a real ChatOpenAI on the loopback server."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import ModelCallLimitMiddleware, ModelRetryMiddleware
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from langchain_irl import RewardExampleSelector, RewardModel
from langchain_irl.middleware import BestOfNMiddleware, FewShotMiddleware
from langchain_irl.testing.server import OpenAICompatibleServer
from tests.conftest import DUPLICATE_CANDIDATES

QUESTION = "A well-dressed man complaining about his fuming soup to a server"


@tool
def look_up_cartoon(topic: str) -> str:
    """Look up what the cartoon shows."""
    return f"The cartoon shows: {topic}"


@pytest.fixture
def server(caption_answers: list[str]) -> Iterator[OpenAICompatibleServer]:
    with OpenAICompatibleServer(answers=caption_answers[:60], seed=4) as running:
        yield running


def _llm(server: OpenAICompatibleServer) -> ChatOpenAI:
    return ChatOpenAI(base_url=server.base_url, api_key="unused", model="loopback", max_retries=0)


def _final(result: dict) -> object:
    return result["messages"][-1]


def _check_argmax(message: object, model: RewardModel) -> None:
    meta = message.response_metadata["best_of_n"]  # type: ignore[attr-defined]
    assert meta["chosen_index"] == int(np.argmax(meta["rewards"]))
    assert message.text == meta["candidates"][meta["chosen_index"]]  # type: ignore[attr-defined]


def test_agent_answer_is_the_reward_argmax(
    server: OpenAICompatibleServer, model: RewardModel
) -> None:
    best = BestOfNMiddleware(model, n=4, return_all=True)
    agent = create_agent(_llm(server), [], middleware=[best])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", DUPLICATE_CANDIDATES, UserWarning)
        result = agent.invoke({"messages": [HumanMessage(QUESTION)]})
    message = _final(result)
    _check_argmax(message, model)
    meta = message.response_metadata["best_of_n"]
    expected = [model.score(QUESTION, [text])[0] for text in meta["candidates"]]
    np.testing.assert_allclose(meta["rewards"], expected, atol=1e-6)
    assert len(server.requests) == 4


async def test_tool_turns_and_few_shot_async(
    server: OpenAICompatibleServer, model: RewardModel
) -> None:
    selector = RewardExampleSelector(
        examples=[
            {"input": "A cat chairs a board meeting.", "output": "Any other business? Meow."},
            {"input": "A dog in a suit at a bank.", "output": "I'd like a loan for a bone."},
            {"input": "A chef and a smoking pot.", "output": "It's supposed to do that."},
        ],
        reward_model=model,
    )
    agent = create_agent(
        _llm(server),
        [look_up_cartoon],
        system_prompt="You write captions.",
        middleware=[FewShotMiddleware(selector, k=2), BestOfNMiddleware(model, n=3)],
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", DUPLICATE_CANDIDATES, UserWarning)
        result = await agent.ainvoke({"messages": [HumanMessage(QUESTION)]})
    types = [m.type for m in result["messages"]]
    assert types == ["human", "ai", "tool", "ai"]  # tool call, tool result, final answer
    assert result["messages"][1].tool_calls[0]["name"] == "look_up_cartoon"
    assert "best_of_n" in result["messages"][1].response_metadata
    assert len(server.requests) == 6  # two model calls, three candidates each
    system = server.requests[0]["messages"][0]
    assert system["role"] == "system" and system["content"].startswith("You write captions.")
    picked = [d.index for d in selector.rank(QUESTION, 2)]
    for index in picked:
        assert selector.examples[index]["output"] in system["content"]
    assert not any("Examples of good answers" in m.text for m in result["messages"])


def test_failed_candidates_do_not_fail_the_step(
    caption_answers: list[str], model: RewardModel
) -> None:
    with OpenAICompatibleServer(answers=caption_answers, failure_rate=0.5, seed=5) as server:
        agent = create_agent(_llm(server), [], middleware=[BestOfNMiddleware(model, n=6)])
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", DUPLICATE_CANDIDATES, UserWarning)
            result = agent.invoke({"messages": [HumanMessage(QUESTION)]})
        meta = _final(result).response_metadata["best_of_n"]
        assert 0 < len(meta["failures"]) == server.faults_injected
        assert meta["n_attempted"] == meta["n_succeeded"] + len(meta["failures"])
        assert meta["retry_waves"] >= 1  # the failed ones were asked for again


def test_options_are_validated_before_any_call(model: RewardModel) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="selection"):
        BestOfNMiddleware(model, n=4, selection="bogus")
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        BestOfNMiddleware(model, n=0)
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        BestOfNMiddleware(model, no_such_option=1)


def test_all_failed_raises_and_composes_with_retry(
    caption_answers: list[str], model: RewardModel
) -> None:
    with OpenAICompatibleServer(answers=caption_answers, failure_rate=1.0) as server:
        agent = create_agent(_llm(server), [], middleware=[BestOfNMiddleware(model, n=2)])
        with pytest.raises(Exception, match="injected server error"):
            agent.invoke({"messages": [HumanMessage(QUESTION)]})
        server.failure_rate = 0.0
        retried = create_agent(
            _llm(server),
            [],
            middleware=[
                ModelCallLimitMiddleware(run_limit=3),
                ModelRetryMiddleware(max_retries=1, initial_delay=0.0),
                BestOfNMiddleware(model, n=2),
            ],
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", DUPLICATE_CANDIDATES, UserWarning)
            result = retried.invoke({"messages": [HumanMessage(QUESTION)]})
        assert "best_of_n" in _final(result).response_metadata
