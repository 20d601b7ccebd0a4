"""Speculative rejection: best-of-n that stops writing the candidates that are losing.

Sun et al. (NeurIPS 2024, "Fast Best-of-N Decoding via Speculative Rejection") score partial
generations with the reward model and halt the unpromising ones early. Behind an API the same works
with streams: the n candidates stream concurrently; each time one reaches a checkpoint (tokens
written) its prefix is scored, and a losing stream is closed, which stops generation, and billing,
at the provider. Survivors run to the end; the configured selection rule picks among them.

The original decides in lock-step: every candidate reaches the checkpoint, then the losers are
cut. Over the network that barrier waits for the slowest stream while the others keep writing
(and billing), and streams queued behind `max_concurrency` hold everyone up. Here each stream is
judged alone, against a running quantile of what the others showed at the same checkpoint.
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

from langchain_irl.engine.errors import is_retryable
from langchain_irl.engine.limit import ConcurrencyLimit
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
    started: bool = False
    finished: bool = False
    error: BaseException | None = None
    cut_at: int | None = None
    tokens_at_cut: int | None = None
    prefix_scores: list[tuple[int, float]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    @property
    def text(self) -> str:
        return "" if self.chunk is None else render_output(self.chunk)

    @property
    def done(self) -> bool:
        return self.finished or self.error is not None

    @property
    def alive(self) -> bool:
        """Still a candidate: not cut, not failed (queued, writing, or finished)."""
        return self.cut_at is None and self.error is None

    def describe(self) -> dict[str, Any]:
        overshoot = None if self.cut_at is None else (self.tokens_at_cut or 0) - self.cut_at
        return {
            "tokens": self.tokens,
            "cut_at": self.cut_at,
            "overshoot": overshoot,
            "prefix_scores": [[t, round(r, 6)] for t, r in self.prefix_scores],
            "failed": self.error is not None,
        }


async def arun_speculative(
    pool: CandidatePool, sampler: StreamSampler, limit: ConcurrencyLimit
) -> Choice:
    """Stream `pool.options.n` candidates, judge each at its checkpoints, fill the pool, choose.

    No barrier: a stream that reaches a checkpoint is scored right away (its prefix at exactly
    the checkpoint, in a worker thread, while every stream goes on writing), and every stream
    still writing that is no longer among the best `keep` share of the prefixes scored there so
    far is closed: a running quantile, so early arrivals are cut as soon as better ones show up.
    Streams past `max_concurrency` wait for a slot, and get one as soon as another is cut or ends.
    """
    options = pool.options
    speculative = options.speculative
    assert speculative is not None
    scorer = asyncio.ensure_future(asyncio.to_thread(pool.make_scorer))
    streams = [_Stream() for _ in range(options.n)]
    scored: list[dict[int, float]] = [{} for _ in speculative.checkpoints]  # index -> prefix score
    judges: set[asyncio.Task[None]] = set()
    failed = asyncio.Event()  # a failure that ends the call (control flow, not retryable)
    pool.attempted = options.n

    def cut(index: int, checkpoint: int) -> None:
        stream = streams[index]
        if not stream.alive or stream.done:
            return
        if sum(s.alive for s in streams) - 1 < speculative.min_survivors:
            return
        stream.cut_at, stream.tokens_at_cut = checkpoint, stream.tokens
        if stream.task is not None:
            stream.task.cancel()  # closing the stream stops generation at the provider

    async def judge(index: int, step: int, prefix: str) -> None:
        pool.scorer = pool.scorer or await scorer
        rewards, _ = await asyncio.to_thread(pool.scorer.score_with_embeddings, [prefix])
        reward = float(rewards[0])
        checkpoint = speculative.checkpoints[step]
        stream = streams[index]
        stream.prefix_scores.append((checkpoint, reward))
        here = scored[step]
        here[index] = reward
        ranked = sorted(here, key=here.__getitem__, reverse=True)
        for loser in ranked[speculative.passing(len(here)) :]:
            cut(loser, checkpoint)

    async def write(index: int) -> None:
        stream = streams[index]
        async with limit.aheld(options.max_concurrency):
            if failed.is_set():  # the call is ending: send nothing more
                return
            stream.started = True
            chunks = None
            try:
                chunks = sampler.stream_one()
                step = 0
                async for chunk in chunks:
                    if stream.cut_at is not None:  # a cancellation the stream swallowed
                        break  # (asyncio.wait_for can, before Python 3.12)
                    if not isinstance(chunk, AIMessageChunk):
                        raise TypeError(f"the inner model streamed a {type(chunk).__name__}")
                    stream.chunk = chunk if stream.chunk is None else stream.chunk + chunk
                    if chunk.text or chunk.tool_call_chunks:
                        stream.tokens += 1
                        if step < len(scored) and stream.tokens == speculative.checkpoints[step]:
                            task = asyncio.ensure_future(judge(index, step, stream.text))
                            judges.add(task)
                            task.add_done_callback(judges.discard)
                            step += 1
                stream.finished = stream.cut_at is None
            except Exception as error:  # a failed candidate, like any other
                stream.error = error
                if isinstance(error, sampler.control_flow) or not is_retryable(error):
                    failed.set()
            finally:
                if chunks is not None:  # a closed stream stops generation at the provider
                    await chunks.aclose()

    for index, stream in enumerate(streams):
        stream.task = asyncio.ensure_future(write(index))
    writers = asyncio.gather(*(s.task for s in streams if s.task), return_exceptions=True)
    stop = asyncio.ensure_future(failed.wait())
    try:
        await asyncio.wait([writers, stop], return_when=asyncio.FIRST_COMPLETED)
        _raise_failure(streams, sampler)
        await asyncio.gather(*judges, return_exceptions=True)  # the finished ones' last scores
        pool.scorer = pool.scorer or await scorer
    finally:  # after an interrupt, a cancellation or a failure: stop every stream, and wait
        for task in (*(s.task for s in streams if s.task), *judges, stop, scorer):
            task.cancel()
        await asyncio.gather(writers, *judges, return_exceptions=True)
    await asyncio.to_thread(_fill, pool, sampler, streams)
    choice = pool.select(sampler.token_counter)
    usage, counted_by = _usage(pool.conversation, streams, sampler.token_counter)
    overshoots = [s.describe()["overshoot"] for s in streams if s.cut_at is not None]
    metadata = {
        **choice.metadata,
        "usage_counted_by": counted_by,
        "speculative": {
            **speculative.model_dump(mode="json"),
            "generated_tokens": sum(s.tokens for s in streams),
            "median_overshoot": float(np.median(overshoots)) if overshoots else None,
            "candidates": [s.describe() for s in streams],
        },
    }
    return Choice(choice.index, metadata, usage)


def _raise_failure(streams: Sequence[_Stream], sampler: StreamSampler) -> None:
    """Control flow (an agent's interrupt) and failures no retry can mend end the call."""
    for stream in streams:
        if isinstance(stream.error, sampler.control_flow):
            raise stream.error
    for stream in streams:
        if stream.error is not None and not is_retryable(stream.error):
            raise stream.error


def _fill(pool: CandidatePool, sampler: StreamSampler, streams: Sequence[_Stream]) -> None:
    """Finished survivors become the pool's candidates; failed streams its failures."""
    for stream in streams:
        if stream.error is not None:
            pool.add_failure(stream.error)
        elif stream.finished and stream.cut_at is None:  # an empty stream is an empty answer
            chunk = stream.chunk if stream.chunk is not None else AIMessageChunk(content="")
            message = message_chunk_to_message(chunk)
            assert isinstance(message, AIMessage)
            pool.add([sampler.payload(message)], [message])


def _usage(
    conversation: list[BaseMessage], streams: Sequence[_Stream], counter: TokenCounter | None
) -> tuple[UsageMetadata | None, str | None]:
    """What was generated, cut streams included: each stream's own report when it finished with
    one, else its streamed chunks (one token each); the prompt once per stream that started."""
    started = [s for s in streams if s.chunk is not None or s.error is not None]
    reported = [s.chunk.usage_metadata for s in started if s.chunk and s.chunk.usage_metadata]
    output_tokens = sum(  # a cut stream's report may predate what it streamed
        max(s.chunk.usage_metadata["output_tokens"], s.tokens)
        if s.chunk and s.chunk.usage_metadata
        else s.tokens
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
