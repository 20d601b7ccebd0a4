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
from langchain_irl.engine.options import BestOfNOptions
from langchain_irl.engine.pool import CandidatePool, Choice
from langchain_irl.engine.usage import TokenCounter
from langchain_irl.reward_model.model import PromptScorer
from langchain_irl.reward_model.rendering import render_output


class StreamSampler(Protocol):
    """A sampler whose candidates can be streamed one at a time (see `runner.Sampler`)."""

    @property
    def control_flow(self) -> tuple[type[BaseException], ...]: ...

    @property
    def token_counter(self) -> TokenCounter | None: ...

    def stream_one(self) -> AsyncGenerator[BaseMessageChunk, None]:
        """One candidate, as the inner model streams it."""
        ...

    def payload(self, message: AIMessage) -> Any:
        """What the adapter returns for a finished candidate (a ChatGeneration, ...)."""
        ...


class PrefixJudge(Protocol):
    """Scores a candidate's prefix at a checkpoint: higher is better, compared only with other
    prefixes of the same length. Async: a judge may wait for its prompt to be encoded, and runs
    its model in a worker thread, while the streams go on."""

    async def score_prefix(self, prefix: str) -> float: ...


class RewardJudge:
    """The reward model's judgment of a prefix (`RewardModel.score_prefixes`): its prefix head's
    prediction of the whole answer's reward, or in a folder without one the reward of the prefix
    as if it were a whole answer (Sun et al.)."""

    def __init__(self, scorer: asyncio.Future[PromptScorer]) -> None:
        self.scorer = scorer  # the prompt, encoded while the first streams start

    async def score_prefix(self, prefix: str) -> float:
        scorer = await self.scorer
        rewards = await asyncio.to_thread(scorer.score_prefixes, [prefix])
        return float(rewards[0])


@dataclass
class _Stream:
    """One candidate while it is written."""

    chunk: AIMessageChunk | None = None
    tokens: int = 0  # content chunks received: one token each from OpenAI-compatible servers
    finished: bool = False
    error: BaseException | None = None
    cut_at: int | None = None
    tokens_at_cut: int | None = None
    prefix_scores: list[tuple[int, float]] = field(default_factory=list)

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
    scorer = asyncio.ensure_future(asyncio.to_thread(pool.make_scorer))
    pool.ask_all_at_once()
    race = _Race(pool.options, sampler, limit, RewardJudge(scorer))
    try:
        await race.run()
        pool.use_scorer(await scorer)
    finally:
        scorer.cancel()  # a no-op once it has finished
    await asyncio.to_thread(race.fill, pool)
    return race.choice(pool.select(sampler.token_counter), pool.conversation)


class _Race:
    """The n streams of one call: each written within the concurrency bound, judged at its
    checkpoints, and cut when it falls behind."""

    def __init__(
        self,
        options: BestOfNOptions,
        sampler: StreamSampler,
        limit: ConcurrencyLimit,
        judge: PrefixJudge,
    ) -> None:
        assert options.speculative is not None
        self.options = options
        self.schedule = options.speculative
        self.sampler = sampler
        self.limit = limit
        self.judge = judge
        self.streams = [_Stream() for _ in range(options.n)]
        # per checkpoint, the prefix scores seen there so far: stream index -> score
        self.scored: list[dict[int, float]] = [{} for _ in self.schedule.checkpoints]
        self.writers: list[asyncio.Task[None]] = []
        self.judging: set[asyncio.Task[None]] = set()
        self.failed = asyncio.Event()  # a failure that ends the call (control flow, not retryable)

    async def run(self) -> None:
        """Write every stream to its end or its cut, and wait for their last scores; raise what
        ends the call. After an interrupt, a cancellation or a failure, every stream is closed."""
        self.writers = [asyncio.ensure_future(self.write(i)) for i in range(len(self.streams))]
        writing = asyncio.gather(*self.writers, return_exceptions=True)
        stop = asyncio.ensure_future(self.failed.wait())
        either: list[asyncio.Future[Any]] = [writing, stop]
        try:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            self.raise_failure()
            await asyncio.gather(*self.judging, return_exceptions=True)  # the last scores
        finally:
            for task in (*self.writers, *self.judging, stop):
                task.cancel()
            await asyncio.gather(writing, *self.judging, return_exceptions=True)

    async def write(self, index: int) -> None:
        """Stream one candidate once a slot is free; send its prefix to be judged at each
        checkpoint. A failure is the candidate's, unless it ends the call."""
        stream = self.streams[index]
        checkpoints = self.schedule.checkpoints
        async with self.limit.aheld(self.options.max_concurrency):
            if self.failed.is_set():  # the call is ending: send nothing more
                return
            chunks = None
            try:
                chunks = self.sampler.stream_one()
                step = 0
                async for chunk in chunks:
                    if stream.cut_at is not None:  # a cancellation the stream swallowed
                        break  # (asyncio.wait_for can, before Python 3.12)
                    if not isinstance(chunk, AIMessageChunk):
                        raise TypeError(f"the inner model streamed a {type(chunk).__name__}")
                    stream.chunk = chunk if stream.chunk is None else stream.chunk + chunk
                    if chunk.text or chunk.tool_call_chunks:
                        stream.tokens += 1
                        if step < len(checkpoints) and stream.tokens == checkpoints[step]:
                            task = asyncio.ensure_future(self.reached(index, step, stream.text))
                            self.judging.add(task)
                            task.add_done_callback(self.judging.discard)
                            step += 1
                stream.finished = stream.cut_at is None
            except Exception as error:  # a failed candidate, like any other
                stream.error = error
                if isinstance(error, self.sampler.control_flow) or not is_retryable(error):
                    self.failed.set()
            finally:
                if chunks is not None:  # a closed stream stops generation at the provider
                    await chunks.aclose()

    async def reached(self, index: int, step: int, prefix: str) -> None:
        """Stream `index` wrote `prefix` up to checkpoint `step`: judge it, then cut every stream
        that is no longer among the best `keep` share of the prefixes scored there."""
        score = await self.judge.score_prefix(prefix)
        checkpoint = self.schedule.checkpoints[step]
        self.streams[index].prefix_scores.append((checkpoint, score))
        here = self.scored[step]
        here[index] = score
        for loser in self.schedule.losers(here):
            self.cut(loser, checkpoint)

    def cut(self, index: int, checkpoint: int) -> None:
        """Close a stream still writing, unless that leaves fewer than `min_survivors`."""
        stream = self.streams[index]
        if not stream.alive or stream.done:
            return
        if sum(s.alive for s in self.streams) - 1 < self.schedule.min_survivors:
            return
        stream.cut_at, stream.tokens_at_cut = checkpoint, stream.tokens
        self.writers[index].cancel()  # closing the stream stops generation at the provider

    def raise_failure(self) -> None:
        """Control flow (an agent's interrupt) and failures no retry can mend end the call."""
        for stream in self.streams:
            if isinstance(stream.error, self.sampler.control_flow):
                raise stream.error
        for stream in self.streams:
            if stream.error is not None and not is_retryable(stream.error):
                raise stream.error

    def fill(self, pool: CandidatePool) -> None:
        """Finished survivors become the pool's candidates; failed streams its failures."""
        for stream in self.streams:
            if stream.error is not None:
                pool.add_failure(stream.error)
            elif stream.finished and stream.cut_at is None:  # an empty stream: an empty answer
                chunk = stream.chunk if stream.chunk is not None else AIMessageChunk(content="")
                message = message_chunk_to_message(chunk)
                assert isinstance(message, AIMessage)
                pool.add([self.sampler.payload(message)], [message])

    def choice(self, choice: Choice, conversation: list[BaseMessage]) -> Choice:
        """The pool's choice, with what every stream cost and where each was cut."""
        usage, counted_by = _usage(conversation, self.streams, self.sampler.token_counter)
        overshoots = [s.describe()["overshoot"] for s in self.streams if s.cut_at is not None]
        metadata = {
            **choice.metadata,
            "usage_counted_by": counted_by,
            "speculative": {
                **self.schedule.model_dump(mode="json"),
                "generated_tokens": sum(s.tokens for s in self.streams),
                "median_overshoot": float(np.median(overshoots)) if overshoots else None,
                "candidates": [s.describe() for s in self.streams],
            },
        }
        return Choice(choice.index, metadata, usage)


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
    prompt: int | None
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
