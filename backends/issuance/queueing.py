"""Who hashes next when logins queue up: the request that arrived first.

A plain executor queue is first-in first-out per *job*. A password grant needs
two jobs (the client secret, then the password), so under a burst of N logins
every client check runs before any password check, and no login finishes until
nearly all have waited ~2N hashes. Ordering jobs by their *request's* arrival
instead lets logins finish one after another, for the same total work.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
import time

_request_started: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "jotguard_request_started", default=None
)


def mark_request_started(started: float | None = None) -> None:
    """Give every hashing job of the current request (task) the same place in line."""
    _request_started.set(time.monotonic() if started is None else started)


def current_priority() -> float:
    """The current request's arrival time; outside a request, now (first come, first served)."""
    started = _request_started.get()
    return time.monotonic() if started is None else started


class PriorityGate:
    """At most ``slots`` holders at once; when full, the lowest key goes next."""

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._waiters: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    async def acquire(self, key: float) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (key, next(self._order), waiter))
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed over just as we were cancelled
            raise

    def release(self) -> None:
        while self._waiters:
            _, _, waiter = heapq.heappop(self._waiters)
            if not waiter.done():  # skip waiters that were cancelled meanwhile
                waiter.set_result(None)
                return
        self._free += 1
