"""`BestOfN`: a chat model that samples n candidates from any chat model and returns the best.

    llm = BestOfN(llm=ChatOpenAI(model="gpt-4o-mini"), reward_model=RewardModel.load(path), n=8)
    chain = prompt | llm | StrOutputParser()     # a drop-in for the plain model

A thin adapter over the engine (`langchain_irl.engine`): it turns a chat-model call into a sampler
and the engine's choice into a `ChatResult`. Everything derived from the fields (the inner model
with forwarded parameters, the concurrency limit) is derived when used, so `model_copy`,
`configurable_fields` and `with_config` see the current values.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    BaseCallbackHandler,
    BaseCallbackManager,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, BaseLanguageModel, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import (
    ChatGeneration,
    ChatGenerationChunk,
    ChatResult,
    Generation,
    LLMResult,
)
from langchain_core.runnables import Runnable, RunnableBinding, RunnableSerializable
from langchain_core.tracers.base import BaseTracer
from langchain_core.tracers.langchain import LangChainTracer
from pydantic import ConfigDict, Field, PrivateAttr, model_validator

from langchain_irl.chat_models.identity import stable_identity
from langchain_irl.engine import BestOfNOptions, Choice, ConcurrencyLimit, arun, run
from langchain_irl.engine.sampling import (
    ChatModelSampler,
    ChatRunnable,
    chat_model_of,
    has_native_n,
    with_params,
)

# Constructor parameters of the wrapper that configure the inner model.
FORWARDED = ("temperature", "max_tokens", "timeout", "max_retries")
_INNERS_LOCK = threading.Lock()
# What changes the answer, besides the reward model and the inner model: LLM caches key on these.
# Not how hard or how fast it is asked (concurrency, retries, timeouts): those never change it.
_ANSWER_FIELDS = set(BestOfNOptions.model_fields) - {
    "reward_model",
    "max_concurrency",
    "candidate_retries",
} | {"native_n", "stop", "temperature", "max_tokens"}


class BestOfN(BestOfNOptions, BaseChatModel):
    """Best-of-n sampling from any chat model, ranked by a learned reward model.

    Each call asks the inner chat model for `n` candidates, scores them with the reward model
    (an ONNX folder: no torch at run time) and returns the best as the answer, so it drops in
    wherever a chat model goes: `prompt | BestOfN(...) | parser`.

    **Setup**

    ```bash
    pip install langchain-irl langchain-openai
    export OPENAI_API_KEY="your-api-key"
    ```

    **Instantiate**

    ```python
    from langchain_openai import ChatOpenAI
    from langchain_irl import BestOfN

    llm = BestOfN(
        llm=ChatOpenAI(model="gpt-4o-mini"),
        reward_model="helpful",  # a bundled model's name, a folder, or a RewardModel
        n=8,
        # selection="argmax", threshold=None, speculative=None, max_concurrency=16,
        # candidate_retries=2, return_all=False, temperature=..., max_tokens=...
    )
    ```

    **Invoke**

    ```python
    message = llm.invoke("Does the 5 second rule actually exist?")
    message.text  # the best of the 8 answers
    ```

    **Stream**

    ```python
    for chunk in llm.stream("Does the 5 second rule actually exist?"):
        print(chunk.text)  # one chunk: the winner, once it is chosen
    ```

    `speculative=True` streams the candidates from the provider and closes the losing streams
    early (speculative rejection): the caller still gets one chunk, the winner.

    **Async**

    ```python
    message = await llm.ainvoke("Does the 5 second rule actually exist?")
    messages = await llm.abatch(["question one", "question two"])
    ```

    **Tools**

    ```python
    from pydantic import BaseModel

    class GetWeather(BaseModel):
        \"\"\"Get the current weather in a given location.\"\"\"

        location: str

    message = llm.bind_tools([GetWeather]).invoke("Weather in Paris?")
    message.tool_calls  # the best candidate's calls (candidates are scored as their JSON)
    ```

    **Structured output**

    ```python
    structured = llm.with_structured_output(GetWeather)  # or method="json_schema"
    structured.invoke("Weather in Paris?")  # GetWeather(location='Paris')
    ```

    **Token usage**

    ```python
    message.usage_metadata  # what all n candidates cost, not the winner alone
    # {'input_tokens': ..., 'output_tokens': ..., 'total_tokens': ...}
    message.response_metadata["best_of_n"]["usage_counted_by"]  # "provider", ...
    ```

    **Response metadata**

    ```python
    meta = message.response_metadata["best_of_n"]
    meta["rewards"], meta["chosen_index"], meta["chosen_percentile"]
    meta["n_succeeded"], meta["failures"], meta["retry_waves"]
    meta["speculative"]  # with speculative=True: per candidate, where it was cut
    ```

    The metadata lives there only (not in `generation_info` or `llm_output`).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, use_attribute_docstrings=True)

    llm: ChatRunnable = Field(exclude=True)
    """The chat model (or any chat-model Runnable: `.bind`, `.with_retry`, configurable) that
    writes the candidates."""
    native_n: bool | None = None
    """Use the provider's `n` (one request). Default: when the inner chat model has an `n` field."""
    temperature: float | None = None
    """Sampling temperature, forwarded to the inner chat model (unset: the inner model's)."""
    max_tokens: int | None = None
    """Most tokens per candidate, forwarded to the inner chat model."""
    timeout: float | None = None
    """Seconds per request, forwarded to the inner chat model."""
    stop: list[str] | None = None
    """Stop sequences, passed with every candidate request."""
    max_retries: int | None = None
    """The inner chat model's own retries per request (see also `candidate_retries`)."""
    streaming: bool = False
    """Accepted for compatibility; streaming yields the winner once it is chosen."""

    concurrency_limit: ConcurrencyLimit = Field(
        default_factory=ConcurrencyLimit, exclude=True, repr=False
    )
    """The count of requests in flight that `max_concurrency` bounds. Each instance has its own,
    and its copies (`model_copy`, `configurable_fields`, `with_config`) share it; pass one
    `ConcurrencyLimit()` to several instances to bound them together."""

    # Keyed by the values they derive from; shared (not copied) by model_copy.
    _inners: dict[tuple[Any, ...], tuple[ChatRunnable, ChatRunnable]] = PrivateAttr(
        default_factory=dict
    )

    @model_validator(mode="after")
    def _check_inner(self) -> BestOfN:
        with_params(self.llm, self._forwarded())  # they must fit the inner model: fail now
        if self.native_n and not has_native_n(self.llm):
            raise ValueError(
                f"native_n=True needs a chat model with an `n` field; {type(self.llm).__name__} "
                "has none (leave native_n unset to sample concurrently)"
            )
        return self

    def _forwarded(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FORWARDED if getattr(self, name) is not None}

    @property
    def _inner(self) -> ChatRunnable:
        """The inner model with the forwarded parameters, derived from the current fields."""
        params = self._forwarded()
        key = (id(self.llm), *sorted(params.items()))
        with _INNERS_LOCK:
            cached = self._inners.get(key)
            if cached is None or cached[0] is not self.llm:
                if len(self._inners) > 16:  # configurations come and go (configurable fields)
                    self._inners.clear()
                cached = self._inners[key] = (self.llm, with_params(self.llm, params))
            return cached[1]

    @property
    def _llm_type(self) -> str:
        return "best-of-n"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        """Every option that changes the answer, and nothing else: LLM caches key on these, so
        the same question asked of an equivalent model (in another process, with another
        `max_concurrency`) finds the same entry."""
        return {
            **self.model_dump(include=_ANSWER_FIELDS),
            "reward_model": self.reward_model.fingerprint,
            "llm": stable_identity(self._inner),
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        # Traces carry the inner provider and model (what is billed), not the wrapper's name.
        inner = chat_model_of(self._inner)
        if inner is None:
            return super()._get_ls_params(stop=stop, **kwargs)
        return inner[0]._get_ls_params(stop=stop or self.stop, **kwargs)

    def bind_tools(
        self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Tools are formatted by the inner model and forwarded to every candidate call; the
        candidates' tool calls are scored as their JSON text."""
        inner = self._chat_model("bind_tools")
        bound = inner.bind_tools(tools, tool_choice=tool_choice, **kwargs)
        if not isinstance(bound, RunnableBinding):
            raise TypeError(f"{type(inner).__name__}.bind_tools did not return a binding")
        return self.bind(**bound.kwargs)

    def with_structured_output(
        self, schema: dict[str, Any] | type, *, include_raw: bool = False, **kwargs: Any
    ) -> Runnable[LanguageModelInput, Any]:
        """Structured output by the inner model's own method: tool calling (the default), or
        `method="json_schema"`/`"json_mode"` where the inner model implements it. Every candidate
        is asked the same way; candidates are scored as their text (the JSON)."""
        method = kwargs.get("method", "function_calling")
        if method == "function_calling":
            return super().with_structured_output(schema, include_raw=include_raw, **kwargs)
        inner = self._chat_model(f"with_structured_output(method={method!r})")
        if type(inner).with_structured_output is BaseChatModel.with_structured_output:
            raise NotImplementedError(
                f"{type(inner).__name__} has no structured output method {method!r}; use "
                "method='function_calling'"
            )
        structured = inner.with_structured_output(schema, include_raw=include_raw, **kwargs)
        rerouted, found = _reroute(structured, inner, self)
        if not found:
            raise NotImplementedError(
                f"{type(inner).__name__}.with_structured_output(method={method!r}) does not call "
                "the model through a binding that best-of-n can take over"
            )
        return rerouted

    # -- sampling -------------------------------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        sampler = self._sampler(messages, stop, run_manager, kwargs)
        pool, choice = run(self, sampler, messages, self.concurrency_limit)
        return self._result(pool.payloads, choice)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        sampler = self._sampler(messages, stop, run_manager, kwargs)
        pool, choice = await arun(self, sampler, messages, self.concurrency_limit)
        return self._result(pool.payloads, choice)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        result = self._generate(messages, stop=stop, run_manager=run_manager, **kwargs)
        chunk = as_chunk(result.generations[0])
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
        chunk = as_chunk(result.generations[0])
        if run_manager:
            await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
        yield chunk

    # -- helpers --------------------------------------------------------------------------------

    def _sampler(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
        kwargs: dict[str, Any],
    ) -> ChatModelSampler:
        native = has_native_n(self._inner) if self.native_n is None else self.native_n
        return ChatModelSampler(
            self._inner,
            messages,
            native_n=native,
            stop=stop or self.stop,
            callbacks=_child_callbacks(run_manager),
            kwargs=kwargs,
        )

    def _result(self, payloads: list[ChatGeneration], choice: Choice) -> ChatResult:
        """The winner (with the `best_of_n` metadata in its `response_metadata`, the one place
        it is kept), then with `return_all` the other candidates."""
        winner = payloads[choice.index]
        assert isinstance(winner.message, AIMessage)
        generation = ChatGeneration(
            message=choice.annotate(winner.message), generation_info=winner.generation_info
        )
        generations = [generation]
        if self.return_all:
            generations += [g for i, g in enumerate(payloads) if i != choice.index]
        return ChatResult(generations=generations)

    def _chat_model(self, what: str) -> BaseChatModel:
        found = chat_model_of(self._inner)
        if found is None:
            raise NotImplementedError(
                f"{what} needs a chat model inside BestOfN; {type(self.llm).__name__} adds "
                "behaviour around it: apply it to the chat model before wrapping"
            )
        return found[0]


def _reroute(value: Any, inner: BaseChatModel, outer: BestOfN) -> tuple[Any, bool]:
    """`value` with each binding of `inner` replaced by the same binding of `outer`, and whether
    there was one. A Runnable that holds others (a sequence's steps, a map's branches, fallbacks)
    is a pydantic model: it is copied with those fields rerouted, whatever langchain-core names
    them. Language models are leaves."""
    if isinstance(value, RunnableBinding) and value.bound is inner:
        return outer.bind(**value.kwargs), True
    if isinstance(value, dict):
        items = {key: _reroute(item, inner, outer) for key, item in value.items()}
        if any(found for _, found in items.values()):
            return {key: item for key, (item, _) in items.items()}, True
    elif isinstance(value, list | tuple):
        entries = [_reroute(item, inner, outer) for item in value]
        if any(found for _, found in entries):
            return type(value)(item for item, _ in entries), True
    elif isinstance(value, RunnableSerializable) and not isinstance(value, BaseLanguageModel):
        fields = {
            name: _reroute(getattr(value, name), inner, outer) for name in type(value).model_fields
        }
        update = {name: item for name, (item, found) in fields.items() if found}
        if update:
            return value.model_copy(update=update), True
    return value, False


def _child_callbacks(
    run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
) -> BaseCallbackManager | None:
    """Tracers for the inner calls, so each candidate is traced as a child run of this one.

    Only tracers: other handlers see one chat-model run per call, as LangChain's conventions
    expect; they find every candidate in the result's `best_of_n` metadata instead. And the
    tracers see the candidates without their token usage: this run reports what all of them
    cost, and tracing tools add children's usage into their parents."""
    if run_manager is None:
        return None
    manager_class = (
        AsyncCallbackManager
        if isinstance(run_manager, AsyncCallbackManagerForLLMRun)
        else CallbackManager
    )
    manager = manager_class(handlers=[], parent_run_id=run_manager.run_id)
    tracers = [h for h in run_manager.inheritable_handlers if isinstance(h, BaseTracer)]
    handlers: list[BaseCallbackHandler] = [_UsageCountedByParent(t) for t in tracers]
    langsmith = next((t for t in tracers if isinstance(t, LangChainTracer)), None)
    if langsmith is not None:
        handlers.append(_TracedToLangSmith(client=langsmith.client))
    manager.set_handlers(handlers)
    manager.add_tags(run_manager.inheritable_tags)
    manager.add_metadata(run_manager.inheritable_metadata)
    manager.add_tags(["best-of-n-candidate"], inherit=False)
    return manager


class _UsageCountedByParent(BaseCallbackHandler):
    """A tracer's view of the candidate runs: every event goes to the tracer itself (whose run
    map nests the candidates under their parent), except that a finished candidate carries no
    token usage: its best-of-n parent counts it, once."""

    def __init__(self, tracer: BaseTracer) -> None:
        self.tracer = tracer
        self.raise_error = tracer.raise_error
        self.run_inline = tracer.run_inline

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> Any:
        groups = [[_without_usage(g) for g in group] for group in response.generations]
        output = {k: v for k, v in (response.llm_output or {}).items() if k != "token_usage"}
        bare = response.model_copy(update={"generations": groups, "llm_output": output or None})
        return self.tracer.on_llm_end(bare, **kwargs)


class _TracedToLangSmith(LangChainTracer):
    """Tells LangChain that the candidates' calls are traced to LangSmith already (through a
    `_UsageCountedByParent`): it adds a LangSmith tracer of its own to every call whose handlers
    include none, which would post each candidate again, with its usage. Ignores every event."""


def _forward(name: str) -> Callable[..., Any]:
    def forward(self: _UsageCountedByParent, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.tracer, name)(*args, **kwargs)

    return forward


def _forward_flag(name: str) -> property:
    return property(lambda self: getattr(self.tracer, name))


# Every event and flag a handler has, looked up rather than listed, so that the events a later
# langchain-core adds reach the tracer too (and pass the stand-in by).
for _name in dir(BaseCallbackHandler):
    if _name.startswith("on_") and _name != "on_llm_end":
        setattr(_UsageCountedByParent, _name, _forward(_name))
    elif _name.startswith("ignore_"):
        setattr(_UsageCountedByParent, _name, _forward_flag(_name))
        setattr(_TracedToLangSmith, _name, property(lambda self: True))


def _without_usage(generation: Generation) -> Generation:
    message = getattr(generation, "message", None)
    if not isinstance(message, AIMessage):
        return generation
    metadata = {k: v for k, v in message.response_metadata.items() if k != "token_usage"}
    bare = message.model_copy(update={"usage_metadata": None, "response_metadata": metadata})
    return generation.model_copy(update={"message": bare})


def as_chunk(generation: ChatGeneration) -> ChatGenerationChunk:
    """The winner as one final chunk that carries everything its message carries."""
    message = generation.message
    assert isinstance(message, AIMessage)
    tool_call_chunks = [
        tool_call_chunk(
            name=call["name"],
            args=json.dumps(call["args"], ensure_ascii=False),
            id=call["id"],
            index=index,
        )
        for index, call in enumerate(message.tool_calls)
    ]
    tool_call_chunks += [
        tool_call_chunk(
            name=call.get("name"),
            args=call.get("args"),
            id=call.get("id"),
            index=len(tool_call_chunks) + index,
        )
        for index, call in enumerate(message.invalid_tool_calls)
    ]
    chunk = AIMessageChunk(
        content=message.content,
        additional_kwargs=message.additional_kwargs,
        response_metadata=message.response_metadata,
        name=message.name,
        id=message.id,
        usage_metadata=message.usage_metadata,
        tool_call_chunks=tool_call_chunks,
        chunk_position="last",
    )
    return ChatGenerationChunk(message=chunk, generation_info=generation.generation_info)
