"""The best-of-n engine: one sync and one async runner, shared by every adapter.

An adapter supplies a `Sampler` (where candidates come from: a chat model, an agent's model call)
and turns the `Choice` back into its own result type. The runner does the rest, the same way for
all of them: waves of requests within a concurrency bound, scoring as candidates arrive, failures
recorded (and asked for again within the retry budget when a retry can succeed; raised at once when
it cannot), early stop at the threshold, the choice.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from langchain_core.messages import BaseMessage

from langchain_irl.engine.errors import is_retryable
from langchain_irl.engine.limit import ConcurrencyLimit
from langchain_irl.engine.options import BestOfNOptions
from langchain_irl.engine.pool import CandidatePool, Choice
from langchain_irl.engine.speculative import StreamSampler, arun_speculative
from langchain_irl.engine.usage import TokenCounter
from langchain_irl.reward_model.rendering import PromptInput

Candidates = tuple[list[Any], list[BaseMessage]]  # payloads, and the message of each
T = TypeVar("T")


class Sampler(Protocol):
    """Where one call's candidates come from."""

    # Read-only properties: a plain attribute, a class attribute or a property all fit.
    @property
    def native_n(self) -> bool:
        """One request returns many candidates (the provider's `n`); else one request per
        candidate."""
        ...

    @property
    def control_flow(self) -> tuple[type[BaseException], ...]:
        """Exceptions that are not failures (an agent's interrupt): re-raised at once."""
        ...

    @property
    def token_counter(self) -> TokenCounter | None:
        """Counts usage when a response reports none."""
        ...

    def sample(self, count: int) -> Candidates: ...

    async def asample(self, count: int) -> Candidates: ...

    # Streaming samplers (for `speculative`) also have `stream_one` and `payload`: see
    # `speculative.StreamSampler`.


def _requests(sampler: Sampler, size: int) -> tuple[int, int]:
    """(requests, candidates per request) for a wave of `size` candidates."""
    return (1, size) if sampler.native_n else (size, 1)


def run(
    options: BestOfNOptions,
    sampler: Sampler,
    conversation: list[BaseMessage],
    limit: ConcurrencyLimit,
    prompt: PromptInput | None = None,
) -> tuple[CandidatePool, Choice]:
    """One best-of-n call, in threads (each request runs in a copy of the caller's context).

    The reward reads `conversation`, or `prompt` if given (a batch job's input, verbatim)."""
    if options.speculative is not None:  # streams are async: run them on the engine's loop
        return on_engine_loop(arun(options, sampler, conversation, limit, prompt))

    stopped = threading.Event()  # a failure no retry mends: send nothing more

    def limited(count: int) -> Candidates | None:
        with limit.held(options.max_concurrency):
            if stopped.is_set():
                return None
            with _stop_on_fatal(stopped):
                return sampler.sample(count)

    pool = CandidatePool(options, conversation, prompt)
    for size, wait in pool.waves():
        time.sleep(wait)
        requests, count = _requests(sampler, size)
        executor = ThreadPoolExecutor(min(requests, options.max_concurrency))
        try:
            futures = [
                executor.submit(contextvars.copy_context().run, limited, count)
                for _ in range(requests)
            ]
            if not pool.has_scorer:  # encode the prompt while the first requests run
                pool.use_scorer(pool.make_scorer())
            for future in as_completed(futures):
                outcome = future.exception() or future.result()
                if outcome is not None:
                    _record(pool, sampler, count, outcome)
        except BaseException:  # a fatal failure, an interrupt: requests not yet sent never are
            stopped.set()
            raise
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
    return pool, pool.select(sampler.token_counter)


async def arun(
    options: BestOfNOptions,
    sampler: Sampler,
    conversation: list[BaseMessage],
    limit: ConcurrencyLimit,
    prompt: PromptInput | None = None,
) -> tuple[CandidatePool, Choice]:
    """One best-of-n call on the running event loop; scoring runs in worker threads."""
    pool = CandidatePool(options, conversation, prompt)
    if options.speculative is not None:
        return pool, await arun_speculative(pool, _streaming(sampler), limit)

    stopped = threading.Event()

    async def limited(count: int) -> Candidates | None:
        async with limit.aheld(options.max_concurrency):
            if stopped.is_set():
                return None
            with _stop_on_fatal(stopped):
                return await sampler.asample(count)

    # The prompt is encoded while the first candidates are being written.
    scorer = asyncio.ensure_future(asyncio.to_thread(pool.make_scorer))
    try:
        for size, wait in pool.waves():
            await asyncio.sleep(wait)
            requests, count = _requests(sampler, size)
            tasks = [asyncio.ensure_future(limited(count)) for _ in range(requests)]
            try:
                for done in asyncio.as_completed(tasks):
                    outcome: Candidates | BaseException | None
                    try:
                        outcome = await done
                    except Exception as error:
                        outcome = error
                    if outcome is None:
                        continue
                    if isinstance(outcome, sampler.control_flow):
                        raise outcome  # before waiting for anything else
                    if not pool.has_scorer:
                        pool.use_scorer(await scorer)
                    await asyncio.to_thread(_record, pool, sampler, count, outcome)
            finally:  # after a fatal failure, an interrupt or a cancellation: stop the others
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        scorer.cancel()  # a no-op once it has finished
    return pool, pool.select(sampler.token_counter)


_ENGINE_LOOP: asyncio.AbstractEventLoop | None = None
_CLOSE_SECONDS = 10.0  # the longest an interrupted sync call waits for its streams to close
_ENGINE_LOOP_LOCK = threading.Lock()


def on_engine_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from sync code on one long-lived event loop (a daemon thread), in a copy of
    the caller's context (sync speculative calls, batch jobs). One loop for every call, not one
    per call: async HTTP clients that LangChain caches across calls (ChatOpenAI's) keep
    connections bound to the loop that opened them, and fail with "Event loop is closed" on the
    next loop."""
    global _ENGINE_LOOP
    with _ENGINE_LOOP_LOCK:
        if _ENGINE_LOOP is None:
            _ENGINE_LOOP = asyncio.new_event_loop()
            threading.Thread(
                target=_ENGINE_LOOP.run_forever, name="best-of-n-loop", daemon=True
            ).start()
        loop = _ENGINE_LOOP
    context = contextvars.copy_context()
    outcome: Future[T] = Future()
    started: Future[asyncio.Task[T]] = Future()

    def start() -> None:
        try:  # the task runs in the caller's context (create_task's context= is 3.11+)
            task = context.run(loop.create_task, coroutine)
        except BaseException as error:  # never leave the caller waiting
            outcome.set_exception(error)
            started.set_exception(error)
            return
        task.add_done_callback(lambda done: _settle(done, outcome))
        started.set_result(task)

    loop.call_soon_threadsafe(start)
    try:
        return outcome.result()
    except BaseException:  # Ctrl-C, a timeout: cancel the call, so its streams close
        if not outcome.done():
            loop.call_soon_threadsafe(lambda: started.result().cancel())
            concurrent.futures.wait([outcome], timeout=_CLOSE_SECONDS)
        raise


def _settle(task: asyncio.Task[T], outcome: Future[T]) -> None:
    if task.cancelled():
        outcome.cancel()
    elif task.exception() is not None:
        outcome.set_exception(task.exception())  # type: ignore[arg-type]
    else:
        outcome.set_result(task.result())


def _streaming(sampler: Sampler) -> StreamSampler:
    if not callable(getattr(sampler, "stream_one", None)):
        raise TypeError(f"speculative rejection needs a streaming sampler; {sampler!r} is not one")
    return sampler  # type: ignore[return-value]


@contextmanager
def _stop_on_fatal(stopped: threading.Event) -> Iterator[None]:
    """Set `stopped` when the request fails in a way no retry mends, before its slot is free:
    the requests waiting for the slot are then never sent."""
    try:
        yield
    except Exception as error:
        if not is_retryable(error):
            stopped.set()
        raise


def _record(
    pool: CandidatePool, sampler: Sampler, count: int, outcome: Candidates | BaseException
) -> None:
    """Add one request's candidates to the pool, or its failure (for all `count` it carried)."""
    if isinstance(outcome, BaseException):
        if isinstance(outcome, sampler.control_flow) or not isinstance(outcome, Exception):
            raise outcome  # interrupts and cancellations are control flow, not failed candidates
        pool.add_failure(outcome, count)
        if pool.fatal is not None:
            raise pool.fatal
    else:
        pool.add(*outcome)
