"""What identifies the inner model of a best-of-n call, for LLM caches: stable across processes.

A cache key must name what changes the answer and nothing else. So the inner Runnable is described
by its structure: the chat model's own identifying parameters and serialized fields (the endpoint
too), what bindings bind (tools, stop, configurable values), the fallbacks. A configurable model
is resolved per call from the caller's config, so it gets a process-local key. Retries, timeouts,
clients and callbacks never change an answer and are left out. No `repr`: a repr may hold an
object's address, which differs from one process to the next.
"""

from __future__ import annotations

import json
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.load import Serializable, dumpd
from langchain_core.runnables import Runnable, RunnableBinding, RunnableWithFallbacks
from langchain_core.runnables.configurable import DynamicRunnable
from pydantic import BaseModel

# Chat-model fields that change how a request is sent, never what it answers.
_NOT_ANSWER = frozenset(
    {
        "max_retries",
        "request_timeout",
        "timeout",
        "stream_chunk_timeout",
        "http_client",
        "http_async_client",
        "rate_limiter",
        "callbacks",
        "callback_manager",
        "verbose",
        "cache",
        "tags",
        "metadata",
    }
)
# Config keys that change what a bound Runnable answers (the rest: callbacks, tags, run names).
_ANSWER_CONFIG = ("configurable",)


def stable_identity(runnable: Runnable[Any, Any]) -> Any:
    """A JSON-able description of `runnable` that is equal for equal models in any process.

    A Runnable of a kind not described here, and not serializable by langchain-core, is named by
    its class and its address: such a key never matches in another process (a miss), where a
    repr could match the wrong model (a wrong answer)."""
    kind = f"{type(runnable).__module__}.{type(runnable).__qualname__}"
    if isinstance(runnable, BaseChatModel):  # as LangChain's own cache keys a chat model:
        serialized = dumpd(runnable) if runnable.is_lc_serializable() else None  # its fields
        if serialized is not None:
            kwargs = serialized.get("kwargs", {})
            serialized["kwargs"] = {k: v for k, v in kwargs.items() if k not in _NOT_ANSWER}
        params = {"params": runnable._identifying_params, "serialized": serialized}
        return {"chat_model": kind, **_jsonable(params)}
    if isinstance(runnable, RunnableBinding):  # .bind, .with_config, .with_retry
        config = {k: runnable.config[k] for k in _ANSWER_CONFIG if runnable.config.get(k)}  # type: ignore[literal-required]
        return {
            "bound": stable_identity(runnable.bound),
            "kwargs": _jsonable(runnable.kwargs),
            "config": _jsonable(config),
        }
    if isinstance(runnable, RunnableWithFallbacks):
        return {
            "runnable": stable_identity(runnable.runnable),
            "fallbacks": [stable_identity(f) for f in runnable.fallbacks],
        }
    if isinstance(runnable, DynamicRunnable):  # resolved per call, from the caller's config:
        return {"configurable": kind, "process_local_id": id(runnable)}  # no stable identity
    # Only a Serializable has is_lc_serializable (a RunnableLambda, for one, does not).
    if isinstance(runnable, Serializable) and runnable.is_lc_serializable():
        return _jsonable(dumpd(runnable))
    return {"unidentified": kind, "process_local_id": id(runnable)}


def _jsonable(value: Any) -> Any:
    """`value` as JSON: pydantic schemas (structured output) by their JSON schema, models by
    their fields, anything else by its class and address (process-local: a miss, never a wrong
    hit)."""

    def describe(item: Any) -> Any:
        if isinstance(item, type) and issubclass(item, BaseModel):
            return {"schema": item.model_json_schema()}
        if isinstance(item, BaseModel):
            return item.model_dump(mode="json")
        return {"unidentified": type(item).__qualname__, "process_local_id": id(item)}

    return json.loads(json.dumps(value, sort_keys=True, default=describe))
