"""Speculative rejection: best-of-n that stops writing the candidates that are losing.

Sun et al. (NeurIPS 2024, "Fast Best-of-N Decoding via Speculative Rejection") score partial
generations with the reward model and halt the unpromising ones early. Behind an API the same works
with streams: all n candidates stream concurrently; at each checkpoint (tokens written) the partial
texts are scored and the losers' streams are closed, which stops generation, and billing, at the
provider. Survivors run to the end; the configured selection rule picks among them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    BaseMessageChunk,
    message_chunk_to_message,
)
from langchain_core.messages.ai import UsageMetadata

from langchain_irl.engine.options import SpeculativeRejection
from langchain_irl.engine.pool import CandidatePool, Choice
from langchain_irl.engine.usage import TokenCounter
from langchain_irl.reward_model.rendering import render_output


class StreamSampler(Protocol):
    """A sampler whose candidates can be streamed one at a time (see `runner.Sampler`)."""

    control_flow: tuple[type[BaseException], ...]
    token_counter: TokenCounter | None

    def stream_one(self) -> AsyncGenerator[BaseMessageChunk, None]:
        """One candidate, as the inner model streams it."""
        ...

    def payload(self, message: AIMessage) -> Any:
        """What the adapter returns for a finished candidate (a ChatGeneration, ...)."""
        ...


@dataclass
class _Stream:
    """One candidate while it is written."""

    chunk: AIMessageChunk | None = None
    tokens: int = 0  # content chunks received: one token each from OpenAI-compatible servers
    finished: bool = False
    error: BaseException | None = None
    cut_at: int | None = None
    prefix_scores: list[tuple[int, float]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    @property
    def text(self) -> str:
        return "" if self.chunk is None else render_output(self.chunk)

    @property
    def done(self) -> bool:
        return self.finished or self.error is not None

    def describe(self) -> dict[str, Any]:
        return {
            "tokens": self.tokens,
            "cut_at": self.cut_at,
            "prefix_scores": [[t, round(r, 6)] for t, r in self.prefix_scores],
            "failed": self.error is not None,
        }


async def arun_speculative(
    pool: CandidatePool,
    sampler: StreamSampler,
    semaphore: asyncio.Semaphore,
    speculative: SpeculativeRejection,
) -> Choice:
    """Stream `pool.options.n` candidates, reject at the checkpoints, fill the pool, choose."""
    options = pool.options
    scorer = asyncio.ensure_future(
        asyncio.to_thread(options.reward_model.scorer, pool.conversation)
    )
    changed = asyncio.Event()
    streams = [_Stream() for _ in range(options.n)]
    pool.attempted = options.n

    async def write(stream: _Stream) -> None:
        async with semaphore:
            chunks = None
            try:
                chunks = sampler.stream_one()
                async for chunk in chunks:
                    if stream.cut_at is not None:  # a cancellation the stream swallowed
                        break  # (asyncio.wait_for can, before Python 3.12)
                    if not isinstance(chunk, AIMessageChunk):
                        raise TypeError(f"the inner model streamed a {type(chunk).__name__}")
                    stream.chunk = chunk if stream.chunk is None else stream.chunk + chunk
                    if chunk.text or chunk.tool_call_chunks:
                        stream.tokens += 1
                        changed.set()
                stream.finished = stream.cut_at is None
            except Exception as error:  # a failed candidate, like any other
                stream.error = error
            finally:
                if chunks is not None:  # a closed stream stops generation at the provider
                    await chunks.aclose()
                changed.set()

    for stream in streams:
        stream.task = asyncio.ensure_future(write(stream))
    try:
        alive = streams
        for checkpoint in speculative.checkpoints:
            alive = await _reached(alive, checkpoint, changed, sampler)
            if len(alive) <= speculative.min_survivors:
                break
            writing = [s for s in alive if not s.done]  # finished ones cost nothing more
            if not writing:
                break
            pool.scorer = pool.scorer or await scorer
            rewards, _ = await asyncio.to_thread(pool.scorer.score, [s.text for s in writing])
            for stream, reward in zip(writing, rewards.tolist(), strict=True):
                stream.prefix_scores.append((stream.tokens, reward))
            keep = speculative.survivors(len(writing), finished=len(alive) - len(writing))
            order = np.argsort(-rewards, kind="stable")
            for index in order[keep:]:
                writing[index].cut_at = checkpoint
                if writing[index].task is not None:
                    writing[index].task.cancel()
            alive = [s for s in alive if s.cut_at is None]
        await asyncio.gather(*(s.task for s in streams if s.task), return_exceptions=True)
        _raise_control_flow(streams, sampler)
        pool.scorer = pool.scorer or await scorer
    finally:
        for stream in streams:  # after an interrupt or a cancellation: stop every stream
            if stream.task is not None:
                stream.task.cancel()
        scorer.cancel()
    await asyncio.to_thread(_fill, pool, sampler, streams)
    choice = pool.select(sampler.token_counter)
    usage, counted_by = _usage(pool.conversation, streams, sampler.token_counter)
    metadata = {
        **choice.metadata,
        "usage_counted_by": counted_by,
        "speculative": {
            **speculative.model_dump(mode="json"),
            "generated_tokens": sum(s.tokens for s in streams),
            "candidates": [s.describe() for s in streams],
        },
    }
    return Choice(choice.index, metadata, usage)


async def _reached(
    alive: list[_Stream], checkpoint: int, changed: asyncio.Event, sampler: StreamSampler
) -> list[_Stream]:
    """Wait until every live stream has `checkpoint` tokens or has ended; the ones not failed."""
    while True:
        changed.clear()
        _raise_control_flow(alive, sampler)
        alive = [s for s in alive if s.error is None]
        if all(s.done or s.tokens >= checkpoint for s in alive):
            return alive
        await changed.wait()


def _raise_control_flow(streams: Sequence[_Stream], sampler: StreamSampler) -> None:
    for stream in streams:
        if isinstance(stream.error, sampler.control_flow):
            raise stream.error


def _fill(pool: CandidatePool, sampler: StreamSampler, streams: Sequence[_Stream]) -> None:
    """Finished survivors become the pool's candidates; failed streams its failures."""
    for stream in streams:
        if stream.error is not None:
            pool.add_failure(stream.error)
        elif stream.finished and stream.cut_at is None and stream.chunk is not None:
            message = message_chunk_to_message(stream.chunk)
            assert isinstance(message, AIMessage)
            pool.add([sampler.payload(message)], [message])


def _usage(
    conversation: list[BaseMessage], streams: Sequence[_Stream], counter: TokenCounter | None
) -> tuple[UsageMetadata | None, str | None]:
    """What was generated, cut streams included: each stream's own report when it finished with
    one, else its streamed chunks (one token each); the prompt once per stream that started."""
    started = [s for s in streams if s.chunk is not None or s.error is not None]
    reported = [s.chunk.usage_metadata for s in started if s.chunk and s.chunk.usage_metadata]
    output_tokens = sum(
        s.chunk.usage_metadata["output_tokens"] if s.chunk and s.chunk.usage_metadata else s.tokens
        for s in started
    )
    counted_by = ["provider"] if reported else []
    if len(reported) < len(started):
        counted_by.append("streamed chunks")
    if reported:
        prompt = reported[0]["input_tokens"]
    else:
        try:
            prompt = counter.get_num_tokens_from_messages(conversation) if counter else None
        except Exception:  # a tokenizer that needs a download: the prompt's share is unknown
            prompt = None
        if prompt is None:
            return None, None
        counted_by.append("inner model tokenizer")
    input_tokens = prompt * len(started)
    usage = UsageMetadata(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
    )
    return usage, " + ".join(counted_by)
