"""One bound on the requests in flight, whoever sends them: threads, event loops, copies.

A `BestOfN` (or `BestOfNMiddleware`) owns one `ConcurrencyLimit`, and its copies (`model_copy`,
`configurable_fields`, `with_config`) share it, so `max_concurrency` bounds every request they
send together: sync calls in many threads, async calls on any event loop, speculative streams.
Waiters are served first come, first served; a waiter that is cancelled or interrupted hands its
slot on.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass


@dataclass(eq=False)
class _Waiter:
    bound: int
    wake: Callable[[], bool]  # False when the waiter can no longer be woken (its loop closed)
    granted: bool = False


class ConcurrencyLimit:
    """A count of requests in flight; each acquirer brings its own bound (`max_concurrency`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: deque[_Waiter] = deque()
        self.in_flight = 0
        self.peak = 0  # the most ever in flight at once

    @contextmanager
    def held(self, bound: int) -> Iterator[None]:
        """Hold one slot from a thread, waiting while `bound` requests are in flight."""
        event = threading.Event()

        def wake() -> bool:
            event.set()
            return True

        waiter = self._enter(bound, wake)
        if waiter is not None:
            try:
                event.wait()
            except BaseException:
                self._abandon(waiter)
                raise
        try:
            yield
        finally:
            self._release()

    @asynccontextmanager
    async def aheld(self, bound: int) -> AsyncIterator[None]:
        """Hold one slot from a coroutine, without blocking its event loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def wake() -> bool:
            try:
                loop.call_soon_threadsafe(_resolve, future)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                return False
            return True

        waiter = self._enter(bound, wake)
        if waiter is not None:
            try:
                await future
            except BaseException:
                self._abandon(waiter)
                raise
        try:
            yield
        finally:
            self._release()

    def _enter(self, bound: int, wake: Callable[[], bool]) -> _Waiter | None:
        """Take a slot now (None), or queue a waiter to be woken with one."""
        with self._lock:
            if self.in_flight < bound and not self._waiting:
                self._take()
                return None
            waiter = _Waiter(bound, wake)
            self._waiting.append(waiter)
            return waiter

    def _abandon(self, waiter: _Waiter) -> None:
        """A waiter gave up: take it off the queue, or pass on the slot it was just handed."""
        with self._lock:
            if not waiter.granted:
                self._waiting.remove(waiter)
                return
        self._release()

    def _release(self) -> None:
        with self._lock:
            self.in_flight -= 1
            self._hand_over()

    def _hand_over(self) -> None:
        """Wake the waiters, in order, that fit under their bound (the lock is held)."""
        for waiter in list(self._waiting):
            if self.in_flight >= waiter.bound:
                continue
            self._waiting.remove(waiter)
            if waiter.wake():
                waiter.granted = True
                self._take()

    def _take(self) -> None:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
