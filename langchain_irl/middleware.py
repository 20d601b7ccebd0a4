"""Agent middleware: the learned reward inside `langchain.agents.create_agent`.

    middleware = [FewShotMiddleware(selector), BestOfNMiddleware(reward_model, n=4)]
    agent = create_agent(model, tools, middleware=middleware)

- `BestOfNMiddleware` runs each model call n times (concurrently, bounded) and keeps the response
  whose final message scores best: the same sampling, selection, failure and metadata rules as the
  `BestOfN` chat model, from the same code (`CandidatePool`).
- `FewShotMiddleware` adds the k demonstrations the reward-aware selector picks for the latest user
  input to the system message of each model call, leaving the stored conversation untouched.

Needs the `[agents]` extra (`langchain>=1.0`).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

import numpy as np
from langchain.agents.middleware.types import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage
from langgraph.errors import GraphBubbleUp

from langchain_irl.candidates import CandidatePool
from langchain_irl.few_shot import RewardExampleSelector
from langchain_irl.reward_model import PromptScorer, RewardModel
from langchain_irl.selection import Selection

Handler = Callable[[ModelRequest], ModelResponse]
AsyncHandler = Callable[[ModelRequest], Awaitable[ModelResponse]]


class BestOfNMiddleware(AgentMiddleware):
    """Best-of-n for every model call of an agent, ranked by a learned reward model."""

    def __init__(
        self,
        reward_model: RewardModel,
        n: int = 4,
        *,
        selection: Selection = "argmax",
        softmax_temperature: float = 1.0,
        proximity_weight: float = 1.0,
        threshold: float | None = None,
        wave_size: int | None = None,
        max_concurrency: int = 4,
        return_all: bool = False,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if n < 1 or max_concurrency < 1:
            raise ValueError("n and max_concurrency must be at least 1")
        self.reward_model = reward_model
        self.n = n
        self.selection = selection
        self.softmax_temperature = softmax_temperature
        self.proximity_weight = proximity_weight
        self.threshold = threshold
        self.wave_size = wave_size
        self.max_concurrency = max_concurrency
        self.return_all = return_all
        self._rng = np.random.default_rng(seed)

    @property
    def rng(self) -> np.random.Generator:
        return self._rng

    def wrap_model_call(self, request: ModelRequest, handler: Handler) -> ModelResponse:
        pool, scorer = self._start(request)
        for size in pool.waves():
            with ThreadPoolExecutor(min(size, self.max_concurrency)) as executor:
                # each call runs in a copy of this context (LangGraph keeps its config there)
                futures = [
                    executor.submit(contextvars.copy_context().run, handler, request)
                    for _ in range(size)
                ]
                for future in as_completed(futures):
                    self._add(pool, scorer, future.exception() or future.result())
            if pool.reached_threshold():
                break
        return _winner(pool)

    async def awrap_model_call(self, request: ModelRequest, handler: AsyncHandler) -> ModelResponse:
        pool, scorer = await asyncio.to_thread(self._start, request)
        semaphore = asyncio.Semaphore(self.max_concurrency)

        async def one() -> ModelResponse:
            async with semaphore:
                return await handler(request)

        for size in pool.waves():
            for next_done in asyncio.as_completed(
                [asyncio.ensure_future(one()) for _ in range(size)]
            ):
                try:
                    response = await next_done
                except GraphBubbleUp:
                    raise
                except Exception as error:
                    pool.add_failure(error)
                    continue
                await asyncio.to_thread(pool.add, [response], [_final_message(response)], scorer)
            if pool.reached_threshold():
                break
        return _winner(pool)

    def _start(self, request: ModelRequest) -> tuple[CandidatePool, PromptScorer]:
        conversation = _conversation(request)
        prompt = self.reward_model.render(conversation)
        return CandidatePool(self, prompt), self.reward_model.scorer(conversation)

    @staticmethod
    def _add(
        pool: CandidatePool, scorer: PromptScorer, outcome: ModelResponse | BaseException
    ) -> None:
        if isinstance(outcome, GraphBubbleUp):  # interrupts are control flow, not failures
            raise outcome
        if isinstance(outcome, BaseException):
            pool.add_failure(outcome)
        else:
            pool.add([outcome], [_final_message(outcome)], scorer)


class FewShotMiddleware(AgentMiddleware):
    """Show the model the k demonstrations most worth showing for the latest user input."""

    def __init__(
        self,
        selector: RewardExampleSelector,
        k: int = 3,
        *,
        header: str = "Examples of good answers:",
        example_template: str = "Input: {input}\nOutput: {output}",
    ) -> None:
        super().__init__()
        self.selector = selector
        self.k = k
        self.header = header
        self.example_template = example_template

    def wrap_model_call(self, request: ModelRequest, handler: Handler) -> ModelResponse:
        return handler(self._with_examples(request))

    async def awrap_model_call(self, request: ModelRequest, handler: AsyncHandler) -> ModelResponse:
        return await handler(await asyncio.to_thread(self._with_examples, request))

    def _with_examples(self, request: ModelRequest) -> ModelRequest:
        query = next((m.text for m in reversed(request.messages) if m.type == "human"), None)
        if not query:
            return request
        selector = self.selector
        blocks = [
            self.example_template.format(
                input=selector.examples[demo.index][selector.input_key],
                output=selector.examples[demo.index][selector.output_key],
            )
            for demo in selector.rank(query, self.k)
        ]
        examples = self.header + "\n\n" + "\n\n".join(blocks)
        current = request.system_message.text if request.system_message else ""
        system = f"{current}\n\n{examples}" if current else examples
        # override() returns a new request: the agent's stored messages are not touched
        return request.override(system_message=SystemMessage(system))


def _conversation(request: ModelRequest) -> list[BaseMessage]:
    system = [request.system_message] if request.system_message else []
    return [*system, *request.messages]


def _final_message(response: ModelResponse) -> AIMessage:
    message = next((m for m in response.result if isinstance(m, AIMessage)), None)
    if message is None:
        raise ValueError("the model call returned no AI message to score")
    return message


def _winner(pool: CandidatePool) -> ModelResponse:
    choice = pool.select()
    response: ModelResponse = pool.payloads[choice.index]
    message = _final_message(response)
    chosen = message.model_copy(
        update={
            "response_metadata": {**message.response_metadata, "best_of_n": choice.metadata},
            "usage_metadata": choice.usage,
        }
    )
    result: list[Any] = [chosen if m is message else m for m in response.result]
    return ModelResponse(result=result, structured_response=response.structured_response)
