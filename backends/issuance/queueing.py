"""Who hashes next when logins queue up: the request that arrived first, but never more
than a few from one client address at a time.

A plain executor queue is first-in first-out per *job*. A password grant needs
two jobs (the client secret, then the password), so under a burst of N logins
every client check runs before any password check, and no login finishes until
nearly all have waited ~2N hashes. Ordering jobs by their *request's* arrival
instead lets logins finish one after another, for the same total work.

Arrival order alone would put a login sent during another address's burst behind
the whole burst. So each *source* (the client address the web layer names) may
have only a few jobs hashing or in line for the pool at once; its other jobs wait
in a line of their own, and the pool's next free thread goes to whoever arrived
first among the sources' current jobs: a login from elsewhere waits for the jobs
in progress, not for the burst.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
import time
from collections import deque

_request_started: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "jotguard_request_started", default=None
)
_request_source: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "jotguard_request_source", default=None
)


def mark_request_started(started: float | None = None, *, source: str | None = None) -> None:
    """Give every hashing job of the current request (task) the same place in line,
    and name the ``source`` (a client address) whose share of the pool it takes."""
    _request_started.set(time.monotonic() if started is None else started)
    _request_source.set(source)


def current_priority() -> float:
    """The current request's arrival time; outside a request, now (first come, first served)."""
    started = _request_started.get()
    return time.monotonic() if started is None else started


def current_source() -> str | None:
    """The source :func:`mark_request_started` named for this request, if any."""
    return _request_source.get()


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


class SourceSlots:
    """At most ``per_source`` holders per source at once, the rest waiting first in, first out.

    Holds an entry only for a source with jobs, so what it keeps is bounded by the
    jobs in progress, not by how many sources there have been.
    """

    def __init__(self, per_source: int) -> None:
        if per_source < 1:
            raise ValueError("per_source must be at least 1")
        self.per_source = per_source
        self._sources: dict[str, tuple[list[int], deque[asyncio.Future[None]]]] = {}

    async def acquire(self, source: str) -> None:
        held, waiters = self._sources.setdefault(source, ([0], deque()))
        if held[0] < self.per_source and not waiters:
            held[0] += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(source)  # the slot was handed over just as we were cancelled
            else:
                waiters.remove(waiter)
                self._forget_if_idle(source)
            raise

    def release(self, source: str) -> None:
        held, waiters = self._sources[source]
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on: held stays as it is
                return
        held[0] -= 1
        self._forget_if_idle(source)

    def _forget_if_idle(self, source: str) -> None:
        held, waiters = self._sources[source]
        if held[0] == 0 and not waiters:
            del self._sources[source]

    def __len__(self) -> int:
        """Sources with jobs now."""
        return len(self._sources)
