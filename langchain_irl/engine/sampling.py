"""Candidates from any chat-model Runnable a user holds: a chat model, `.bind(...)`,
`.with_retry()`, a configurable model. Shared by `BestOfN` and `collect`.

With the provider's own `n` (a chat model, or a plain binding of one, whose class has an `n` field)
one request returns every candidate and the prompt is billed once; otherwise each candidate is its
own call, which keeps whatever the Runnable adds (retries, fallbacks, configuration).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from langchain_core.callbacks import BaseCallbackManager
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, BaseMessageChunk
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.runnables import Runnable, RunnableBinding, RunnableConfig
from langchain_core.runnables.retry import RunnableRetry

from langchain_irl.engine.usage import TokenCounter, own_token_counter

ChatRunnable = Runnable[Any, BaseMessage]


def chat_model_of(llm: ChatRunnable) -> tuple[BaseChatModel, dict[str, Any]] | None:
    """The chat model a Runnable calls directly, with the kwargs it binds: for a chat model or a
    plain `.bind(...)` of one; None for anything that adds behaviour (retries, configuration)."""
    if isinstance(llm, BaseChatModel):
        return llm, {}
    if (
        isinstance(llm, RunnableBinding)
        and not isinstance(llm, RunnableRetry)
        and isinstance(llm.bound, BaseChatModel)
        and not llm.config
    ):
        return llm.bound, dict(llm.kwargs)
    return None


def has_native_n(llm: ChatRunnable) -> bool:
    """Whether one request can return many candidates (the model class has an `n` field)."""
    found = chat_model_of(llm)
    return found is not None and "n" in type(found[0]).model_fields


def with_params(llm: ChatRunnable, params: dict[str, Any]) -> ChatRunnable:
    """The Runnable with its chat model re-created with `params` (by field name or alias), so that
    parameters baked into its clients at construction (timeouts, retries) take effect."""
    if not params:
        return llm
    found = chat_model_of(llm)
    if found is None:
        raise ValueError(
            f"cannot forward {sorted(params)} into a {type(llm).__name__}; set them on the chat "
            "model inside it instead"
        )
    model = found[0]
    fields = type(model).model_fields
    update = {}
    for key, value in params.items():
        name = next((f for f, info in fields.items() if key in (f, info.alias)), None)
        if name is None:
            raise ValueError(f"{type(model).__name__} has no parameter {key!r} to forward")
        update[name] = value
    explicit = {name: getattr(model, name) for name in model.model_fields_set}
    rebuilt = type(model).model_validate({**explicit, **update})
    if isinstance(llm, RunnableBinding):  # chat_model_of found the model bound inside it
        return llm.model_copy(update={"bound": rebuilt})
    return rebuilt  # llm is the chat model itself


@dataclass
class ChatModelSampler:
    """Draws candidates for one prompt; each is a `ChatGeneration` with its message."""

    llm: ChatRunnable
    messages: list[BaseMessage]
    native_n: bool
    stop: list[str] | None = None
    callbacks: BaseCallbackManager | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    control_flow: tuple[type[BaseException], ...] = ()

    @property
    def token_counter(self) -> TokenCounter | None:
        found = chat_model_of(self.llm)
        return own_token_counter(found[0]) if found else None

    def sample(self, count: int) -> tuple[list[ChatGeneration], list[BaseMessage]]:
        if self.native_n:
            model, bound = self._with_n(count)
            return _generations(model.generate([self.messages], **self._call(bound)))
        message = self.llm.invoke(self.messages, {"callbacks": self.callbacks}, **self._kwargs())
        return _single(message)

    async def asample(self, count: int) -> tuple[list[ChatGeneration], list[BaseMessage]]:
        if self.native_n:
            model, bound = self._with_n(count)
            return _generations(await model.agenerate([self.messages], **self._call(bound)))
        message = await self.llm.ainvoke(
            self.messages, {"callbacks": self.callbacks}, **self._kwargs()
        )
        return _single(message)

    def stream_one(self) -> AsyncGenerator[BaseMessageChunk, None]:
        """One candidate, streamed (speculative rejection closes the losers' streams)."""
        config: RunnableConfig = {"callbacks": self.callbacks}
        return self.llm.astream(self.messages, config, **self._kwargs())  # type: ignore[return-value]

    def payload(self, message: AIMessage) -> ChatGeneration:
        return ChatGeneration(message=message)

    def _with_n(self, count: int) -> tuple[BaseChatModel, dict[str, Any]]:
        """The chat model asked for `count` choices in one request, never streamed: a stream of
        n choices is merged into one message by LangChain's chunk aggregation."""
        found = chat_model_of(self.llm)
        assert found is not None, "native n needs a chat model (see has_native_n)"
        model, bound = found
        update: dict[str, Any] = {"n": count, "disable_streaming": True}
        if "streaming" in type(model).model_fields:
            update["streaming"] = False
        return model.model_copy(update=update), bound

    def _kwargs(self) -> dict[str, Any]:
        return {**({"stop": self.stop} if self.stop else {}), **self.kwargs}

    def _call(self, bound: dict[str, Any]) -> dict[str, Any]:
        return {"callbacks": self.callbacks, **bound, **self._kwargs()}


def _single(message: BaseMessage) -> tuple[list[ChatGeneration], list[BaseMessage]]:
    if not isinstance(message, AIMessage):
        raise TypeError(f"the inner model returned a {type(message).__name__}, not an AIMessage")
    return [ChatGeneration(message=message)], [message]


def _generations(result: LLMResult) -> tuple[list[ChatGeneration], list[BaseMessage]]:
    generations = [g for g in result.generations[0] if isinstance(g, ChatGeneration)]
    # With native n, response-level fields (model_name, ...) are only in llm_output.
    shared = {k: v for k, v in (result.llm_output or {}).items() if k != "token_usage"}
    for generation in generations:
        metadata = generation.message.response_metadata
        metadata.update({k: v for k, v in shared.items() if k not in metadata})
    return generations, [g.message for g in generations]
