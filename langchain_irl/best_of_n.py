"""`BestOfN`: a chat model that samples n candidates from any chat model and returns the best.

    llm = BestOfN(llm=ChatOpenAI(model="gpt-4o-mini"), reward_model=RewardModel.load(path), n=8)
    chain = prompt | llm | StrOutputParser()     # a drop-in for the plain model

Sampling uses the inner model's own `n` when it has one (one request, the prompt billed once), else
n concurrent calls (bounded by `max_concurrency`); candidates are scored as they arrive. The answer
is the chosen candidate's own message, with every candidate's reward in its metadata.
"""

from __future__ import annotations

import asyncio
import json
import threading
import weakref
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

import numpy as np
from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    BaseCallbackManager,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult, LLMResult
from langchain_core.runnables import Runnable, RunnableBinding
from langchain_core.tracers.base import BaseTracer
from pydantic import ConfigDict, Field, PrivateAttr, model_validator

from langchain_irl.candidates import CandidatePool
from langchain_irl.reward_model import PromptScorer, RewardModel
from langchain_irl.selection import Selection

# Constructor parameters of the wrapper that configure the inner model.
FORWARDED = ("temperature", "max_tokens", "timeout", "max_retries")


class BestOfN(BaseChatModel):
    """Best-of-n sampling from any chat model, ranked by a learned reward model."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    llm: BaseChatModel
    """The inner chat model that writes the candidates."""
    reward_model: RewardModel = Field(exclude=True)
    """The learned reward that ranks them."""
    n: int = Field(default=8, ge=1)
    """Candidates per call (at most, with `threshold`)."""
    selection: Selection = "argmax"
    """How to pick among candidates: `argmax`, `softmax` or `regularized` (see `selection.py`)."""
    softmax_temperature: float = Field(default=1.0, gt=0)
    proximity_weight: float = 1.0
    threshold: float | None = Field(default=None, ge=0, le=100)
    """Stop sampling once a candidate scores at or above this percentile of demonstrations."""
    wave_size: int | None = Field(default=None, ge=1)
    """Candidates per wave when `threshold` is set (default: a quarter of n, at least 1)."""
    max_concurrency: int = Field(default=8, ge=1)
    """Most inner calls of this instance in flight at once, across all its concurrent calls."""
    native_n: bool | None = None
    """Use the inner model's `n` (one request). Default: when the inner model has an `n` field."""
    return_all: bool = False
    """Also return every candidate (as further generations, and texts in the metadata)."""
    seed: int | None = None
    """Seed of the softmax rule's sampling."""
    temperature: float | None = None
    max_tokens: int | None = None
    timeout: float | None = None
    stop: list[str] | None = None
    max_retries: int | None = None
    streaming: bool = False
    """Accepted for compatibility; streaming yields the winner once it is chosen."""

    _inner: BaseChatModel = PrivateAttr()
    _rng: np.random.Generator = PrivateAttr()
    # `max_concurrency` bounds this instance's in-flight inner calls across all concurrent
    # user calls: one semaphore for threads, one per event loop for async calls.
    _thread_limit: threading.BoundedSemaphore = PrivateAttr()
    _loop_limits: weakref.WeakKeyDictionary = PrivateAttr(default_factory=weakref.WeakKeyDictionary)

    @model_validator(mode="after")
    def _configure_inner(self) -> BestOfN:
        forwarded = {name: getattr(self, name) for name in FORWARDED}
        self._inner = _with_params(self.llm, {k: v for k, v in forwarded.items() if v is not None})
        self._rng = np.random.default_rng(self.seed)
        self._thread_limit = threading.BoundedSemaphore(self.max_concurrency)
        return self

    @property
    def _llm_type(self) -> str:
        return "best-of-n"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "selection": self.selection,
            "reward_model": self.reward_model.name,
            "llm": self._inner._identifying_params,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        # Traces carry the inner provider and model (what is billed), not the wrapper's name.
        return self._inner._get_ls_params(stop=stop or self.stop, **kwargs)

    def bind_tools(
        self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Tools are formatted by the inner model and forwarded to every candidate call; the
        candidates' tool calls are scored as their JSON text."""
        bound = self._inner.bind_tools(tools, tool_choice=tool_choice, **kwargs)
        if not isinstance(bound, RunnableBinding):
            raise TypeError(f"{type(self._inner).__name__}.bind_tools did not return a binding")
        return self.bind(**bound.kwargs)

    # -- sampling -------------------------------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        pool = self._start(messages)
        scorer = self.reward_model.scorer(messages)
        call = {"stop": stop or self.stop, "callbacks": _child_callbacks(run_manager), **kwargs}

        def one(model: BaseChatModel) -> LLMResult:
            with self._thread_limit:
                return model.generate([messages], **call)

        native = self._uses_native_n()
        for size in pool.waves():
            models = [self._inner_with_n(size)] if native else [self._inner] * size
            with ThreadPoolExecutor(min(len(models), self.max_concurrency)) as executor:
                for future in as_completed([executor.submit(one, m) for m in models]):
                    try:
                        _add_response(pool, future.result(), scorer)
                    except Exception as error:
                        pool.add_failure(error, size if native else 1)
            if pool.reached_threshold():
                break
        return _chat_result(pool)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        pool = self._start(messages)
        # The prompt is encoded while the first candidates are being written.
        scorer_task = asyncio.create_task(asyncio.to_thread(self.reward_model.scorer, messages))
        call = {"stop": stop or self.stop, "callbacks": _child_callbacks(run_manager), **kwargs}
        limit = self._async_limit()

        async def one(model: BaseChatModel) -> LLMResult:
            async with limit:
                return await model.agenerate([messages], **call)

        try:
            for size in pool.waves():
                if self._uses_native_n():
                    tasks = [asyncio.ensure_future(one(self._inner_with_n(size)))]
                else:
                    tasks = [asyncio.ensure_future(one(self._inner)) for _ in range(size)]
                for next_done in asyncio.as_completed(tasks):
                    try:
                        result = await next_done
                    except Exception as error:
                        pool.add_failure(error, size if self._uses_native_n() else 1)
                        continue
                    scorer = await scorer_task
                    await asyncio.to_thread(_add_response, pool, result, scorer)
                if pool.reached_threshold():
                    break
        finally:
            scorer_task.cancel()  # a no-op once it has finished
        return _chat_result(pool)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        result = self._generate(messages, stop=stop, run_manager=run_manager, **kwargs)
        chunk = _as_chunk(result.generations[0])
        if run_manager:
            run_manager.on_llm_new_token(chunk.text, chunk=chunk)
        yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        result = await self._agenerate(messages, stop=stop, run_manager=run_manager, **kwargs)
        chunk = _as_chunk(result.generations[0])
        if run_manager:
            await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
        yield chunk

    # -- helpers --------------------------------------------------------------------------------

    def _async_limit(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if loop not in self._loop_limits:
            self._loop_limits[loop] = asyncio.Semaphore(self.max_concurrency)
        return self._loop_limits[loop]

    def _uses_native_n(self) -> bool:
        if self.native_n is not None:
            return self.native_n
        return "n" in type(self._inner).model_fields

    def _inner_with_n(self, size: int) -> BaseChatModel:
        return self._inner.model_copy(update={"n": size})

    def _start(self, messages: list[BaseMessage]) -> CandidatePool:
        return CandidatePool(self, self.reward_model.render(messages))

    @property
    def rng(self) -> np.random.Generator:
        return self._rng


def _add_response(pool: CandidatePool, result: LLMResult, scorer: PromptScorer) -> None:
    generations = [g for g in result.generations[0] if isinstance(g, ChatGeneration)]
    # With native n, response-level fields (model_name, ...) are only in llm_output.
    shared = {k: v for k, v in (result.llm_output or {}).items() if k != "token_usage"}
    for generation in generations:
        metadata = generation.message.response_metadata
        metadata.update({k: v for k, v in shared.items() if k not in metadata})
    pool.add(generations, [g.message for g in generations], scorer)


def _chat_result(pool: CandidatePool) -> ChatResult:
    choice = pool.select()
    winner: ChatGeneration = pool.payloads[choice.index]
    message = winner.message.model_copy(
        update={
            "response_metadata": {**winner.message.response_metadata, "best_of_n": choice.metadata},
            "usage_metadata": choice.usage,
        }
    )
    generation_info = {**(winner.generation_info or {}), "best_of_n": choice.metadata}
    generations = [ChatGeneration(message=message, generation_info=generation_info)]
    if pool.policy.return_all:
        generations += [g for i, g in enumerate(pool.payloads) if i != choice.index]
    return ChatResult(generations=generations, llm_output={"best_of_n": choice.metadata})


def _with_params(llm: BaseChatModel, params: dict[str, Any]) -> BaseChatModel:
    """Re-create the inner model with forwarded parameters (by field name or alias), so that
    parameters baked into its clients at construction (timeouts, retries) take effect."""
    if not params:
        return llm
    fields = type(llm).model_fields
    update = {}
    for key, value in params.items():
        name = next((f for f, info in fields.items() if key in (f, info.alias)), None)
        if name is None:
            raise ValueError(f"{type(llm).__name__} has no parameter {key!r} to forward")
        update[name] = value
    explicit = {name: getattr(llm, name) for name in llm.model_fields_set}
    return type(llm).model_validate({**explicit, **update})


def _child_callbacks(
    run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
) -> BaseCallbackManager | None:
    """Tracers for the inner calls, so each candidate is traced as a child run of this one.

    Only tracers: other handlers see one chat-model run per call, as LangChain's conventions
    expect (e.g. token counters would otherwise count every candidate twice); they find every
    candidate in the result's `best_of_n` metadata instead."""
    if run_manager is None:
        return None
    manager_class = (
        AsyncCallbackManager
        if isinstance(run_manager, AsyncCallbackManagerForLLMRun)
        else CallbackManager
    )
    manager = manager_class(handlers=[], parent_run_id=run_manager.run_id)
    manager.set_handlers([h for h in run_manager.inheritable_handlers if isinstance(h, BaseTracer)])
    manager.add_tags(run_manager.inheritable_tags)
    manager.add_metadata(run_manager.inheritable_metadata)
    manager.add_tags(["best-of-n-candidate"], inherit=False)
    return manager


def _as_chunk(generation: ChatGeneration) -> ChatGenerationChunk:
    message = generation.message
    calls = message.tool_calls if isinstance(message, AIMessage) else []
    tool_call_chunks = [
        tool_call_chunk(
            name=call["name"],
            args=json.dumps(call["args"], ensure_ascii=False),
            id=call["id"],
            index=index,
        )
        for index, call in enumerate(calls)
    ]
    chunk = AIMessageChunk(
        content=message.content,
        id=message.id,
        response_metadata=message.response_metadata,
        usage_metadata=getattr(message, "usage_metadata", None),
        tool_call_chunks=tool_call_chunks,
        chunk_position="last",
    )
    return ChatGenerationChunk(message=chunk, generation_info=generation.generation_info)
