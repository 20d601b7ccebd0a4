"""`BestOfNMiddleware`: best-of-n for every model call of a `create_agent` agent.

    agent = create_agent(model, tools, middleware=[BestOfNMiddleware(reward_model, n=4)])

Each model call runs n times (concurrently, bounded) and the response whose final message scores
best is kept: the same engine, options, validation and metadata as the `BestOfN` chat model.
Needs the `[agents]` extra (`langchain>=1.0`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain.agents.middleware.types import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.messages import AIMessage, BaseMessage, BaseMessageChunk
from langchain_core.runnables import Runnable
from langgraph.errors import GraphBubbleUp
from typing_extensions import Unpack

from langchain_irl.engine import BestOfNOptions, Choice, ConcurrencyLimit, arun, run
from langchain_irl.engine.options import BestOfNSettings
from langchain_irl.engine.usage import TokenCounter, own_token_counter
from langchain_irl.reward_model.model import RewardModel

Handler = Callable[[ModelRequest], ModelResponse]
AsyncHandler = Callable[[ModelRequest], Awaitable[ModelResponse]]


class BestOfNMiddleware(AgentMiddleware):
    """Best-of-n for every model call of an agent, ranked by a learned reward model.

    Each model call of the agent runs n times (concurrently, within `max_concurrency`), and the
    response whose final message scores best is kept: the same engine, options, validation and
    metadata as the `BestOfN` chat model.

    **Setup**

    ```bash
    pip install "langchain-irl[agents]" langchain-openai
    ```

    **Instantiate**

    ```python
    from langchain.agents import create_agent
    from langchain_irl.middleware import BestOfNMiddleware

    agent = create_agent(
        "openai:gpt-4o-mini",
        tools=[...],
        middleware=[BestOfNMiddleware("helpful", n=4)],
    )
    ```

    **Options** are those of `BestOfN` (typed as `BestOfNSettings`), validated here, before
    any call: `BestOfNMiddleware(rm, n=4, selection="softmax", threshold=90,
    max_concurrency=16, speculative=True)`. `reward_model` is a `RewardModel`, or a bundled
    model's name or a folder to load one from.

    **Invoke**

    ```python
    result = agent.invoke({"messages": [("user", "Plan a picnic.")]})
    result["messages"][-1].response_metadata["best_of_n"]  # rewards, chosen index, ...
    ```

    An agent's interrupts and commands (`GraphBubbleUp`) pass through as control flow, not as
    failed candidates.
    """

    def __init__(
        self,
        reward_model: RewardModel | str | Path,
        n: int = 4,
        **options: Unpack[BestOfNSettings],
    ) -> None:
        super().__init__()
        # Validated from a dict: the validators load a name or folder and turn `True` into a
        # schedule, which the fields' own types (those of the result) do not admit.
        self.options = BestOfNOptions.model_validate(
            {"reward_model": reward_model, "n": n, **options}
        )
        self._limit = ConcurrencyLimit()  # max_concurrency counts across all its calls

    def wrap_model_call(self, request: ModelRequest, handler: Handler) -> ModelResponse:
        sampler = _ModelCallSampler(request, handler=handler)
        pool, choice = run(self.options, sampler, _conversation(request), self._limit)
        return _winner(pool.payloads, choice)

    async def awrap_model_call(self, request: ModelRequest, handler: AsyncHandler) -> ModelResponse:
        sampler = _ModelCallSampler(request, ahandler=handler)
        pool, choice = await arun(self.options, sampler, _conversation(request), self._limit)
        return _winner(pool.payloads, choice)


@dataclass
class _ModelCallSampler:
    """One agent model call, made once per candidate."""

    request: ModelRequest
    handler: Handler | None = None
    ahandler: AsyncHandler | None = None
    native_n = False
    control_flow = (GraphBubbleUp,)  # interrupts and commands are the graph's, not failures

    @property
    def token_counter(self) -> TokenCounter | None:
        return own_token_counter(self.request.model)

    def sample(self, count: int) -> tuple[list[ModelResponse], list[BaseMessage]]:
        assert self.handler is not None
        response = self.handler(self.request)
        return [response], [_final_message(response)]

    async def asample(self, count: int) -> tuple[list[ModelResponse], list[BaseMessage]]:
        assert self.ahandler is not None
        response = await self.ahandler(self.request)
        return [response], [_final_message(response)]

    def stream_one(self) -> AsyncGenerator[BaseMessageChunk, None]:
        """The request's model, with its tools and settings, streamed directly: a handler returns
        whole responses only, so middleware inside this one does not see speculative candidates."""
        request = self.request
        if request.response_format is not None:
            raise NotImplementedError(
                "speculative best-of-n streams the model itself; it does not support an agent's "
                "response_format (structured output): leave speculative off for this agent"
            )
        model: Runnable[Any, BaseMessage] = request.model
        if request.tools:
            model = request.model.bind_tools(request.tools, tool_choice=request.tool_choice)
        return model.astream(_conversation(request), **request.model_settings)  # type: ignore[return-value]

    def payload(self, message: AIMessage) -> ModelResponse:
        return ModelResponse(result=[message], structured_response=None)


def _conversation(request: ModelRequest) -> list[BaseMessage]:
    system = [request.system_message] if request.system_message else []
    return [*system, *request.messages]


def _final_message(response: ModelResponse) -> AIMessage:
    message = next((m for m in response.result if isinstance(m, AIMessage)), None)
    if message is None:
        raise ValueError("the model call returned no AI message to score")
    return message


def _winner(payloads: list[ModelResponse], choice: Choice) -> ModelResponse:
    response = payloads[choice.index]
    message = _final_message(response)
    chosen = choice.annotate(message)
    result: list[Any] = [chosen if m is message else m for m in response.result]
    return ModelResponse(result=result, structured_response=response.structured_response)
