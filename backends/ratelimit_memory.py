"""In-process rate-limit counters for ``memory://``: synchronous, atomic, bounded.

The same three strategies as the ``limits`` library, counted in plain Python
objects: no event loop round trips, no locks (one thread, no awaits), so a
check costs a few microseconds instead of the ~50 the async storage costs.

- **sliding-window-counter**: counts per window aligned to ``int(now // expiry)``;
  the previous window weighs as much of it as the current window still has to go.
- **moving-window**: the timestamps of the hits of the last ``expiry`` seconds, in a
  list (a deque costs 600 bytes even empty; keys are bounded, see
  :mod:`backends.ratelimit_keys`, and their size is what that bound costs).
- **fixed-window**: counts per window aligned to ``int(now // expiry)``.

Every (policy, limit) has a table of its own in which all entries share one
expiry, so ordering entries by their last charge orders them by the time they
become useless: each call drops expired entries from the front, never
sweeping all keys.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from itertools import repeat
from typing import Any, Generic, TypeVar

from backends.ratelimit_policy import Decision, Policy, Quota

EntryT = TypeVar("EntryT")
LookT = TypeVar("LookT", bound=tuple[Any, ...])


class _Window:
    """Counts of the aligned window ``index`` and of the one before it."""

    __slots__ = ("current", "index", "previous")

    def __init__(self, index: int, current: int, previous: int = 0) -> None:
        self.index = index
        self.current = current
        self.previous = previous


class _Table(Generic[EntryT, LookT]):
    """The entries of one limit of one policy, least recently charged first.

    A call looks at a key once (:meth:`look`: what the limit counts, and what
    charging needs), then charges and reports from that look.
    """

    __slots__ = ("amount", "entries", "expiry", "horizon", "name")

    def __init__(self, name: str, amount: int, expiry: int) -> None:
        self.name = name
        self.amount = amount
        self.expiry = expiry
        self.entries: OrderedDict[str, EntryT] = OrderedDict()
        # No entry expires before this; stale only towards earlier (one extra look).
        self.horizon = math.inf

    def entry(self, key: str, now: float) -> EntryT | None:
        if now > self.horizon:
            self._drop_expired(now)
        return self.entries.get(key)

    def _drop_expired(self, now: float) -> None:
        entries = self.entries
        while entries:
            key, entry = next(iter(entries.items()))
            useful_until = self.useful_until(entry)
            if useful_until >= now:
                self.horizon = useful_until
                return
            del entries[key]
        self.horizon = math.inf

    def _charged(self, key: str, entry: EntryT) -> None:
        """Keep ``entry`` as the most recently charged of ``key``."""
        entries = self.entries
        if key in entries:
            entries.move_to_end(key)
        else:
            entries[key] = entry
            if len(entries) == 1:
                self.horizon = self.useful_until(entry)

    def useful_until(self, entry: EntryT) -> float:
        """The time after which ``entry`` can no longer count."""
        raise NotImplementedError

    def look(self, key: str, now: float) -> LookT:
        """``(used, ...)``: what the limit counts for ``key`` now (``cost`` more
        fits if ``used + cost <= amount``), then what charging needs."""
        raise NotImplementedError

    def charge(self, key: str, now: float, look: LookT, cost: int) -> None:
        raise NotImplementedError

    def reset_after(self, now: float, look: LookT, charged: bool) -> float:
        """Seconds until the count goes down (the RateLimit ``t`` value), after
        the ``look``, and the charge if ``charged``."""
        raise NotImplementedError


# (used, entry, window index)
_FixedLook = tuple[int, "_Window | None", int]


class _FixedWindow(_Table[_Window, _FixedLook]):
    def useful_until(self, entry: _Window) -> float:
        return (entry.index + 1) * self.expiry

    def look(self, key: str, now: float) -> _FixedLook:
        index = int(now // self.expiry)
        entry = self.entry(key, now)
        # A window ahead of now (the clock stepped back) still counts: err on refusing.
        used = entry.current if entry is not None and entry.index >= index else 0
        return used, entry, index

    def charge(self, key: str, now: float, look: _FixedLook, cost: int) -> None:
        used, entry, index = look
        if entry is None:
            entry = _Window(index, cost)
        elif used:
            entry.current += cost
        else:
            entry.index, entry.current = index, cost
        self._charged(key, entry)

    def reset_after(self, now: float, look: _FixedLook, charged: bool) -> float:
        used, _, index = look
        return (index + 1) * self.expiry - now if used or charged else 0.0


# (used, entry, window index, seconds the window has to go, previous count, current count)
_SlidingLook = tuple[int, "_Window | None", int, float, int, int]


class _SlidingWindowCounter(_Table[_Window, _SlidingLook]):
    def useful_until(self, entry: _Window) -> float:
        # A window keeps counting, weighted, through the window after it.
        return (entry.index + 2) * self.expiry

    def look(self, key: str, now: float) -> _SlidingLook:
        expiry = self.expiry
        index, into = divmod(now, expiry)
        to_go = expiry - into
        entry = self.entry(key, now)
        previous = current = 0
        if entry is not None:
            if entry.index >= index:
                previous, current = entry.previous, entry.current
            elif entry.index == index - 1:
                previous = entry.current
        used = math.floor(previous * to_go / expiry + current)
        return used, entry, int(index), to_go, previous, current

    def charge(self, key: str, now: float, look: _SlidingLook, cost: int) -> None:
        _, entry, index, _, previous, current = look
        if entry is None:
            entry = _Window(index, cost)
        else:
            entry.index, entry.previous, entry.current = index, previous, current + cost
        self._charged(key, entry)

    def reset_after(self, now: float, look: _SlidingLook, charged: bool) -> float:
        # As limits computes it: the sooner of the previous window's weight
        # dropping by one hit and the current window ending.
        _, _, _, to_go, previous, current = look
        soonest = to_go if current or charged else math.inf
        if previous:
            soonest = min(soonest, to_go % (self.expiry / previous))
        return 0.0 if soonest == math.inf else soonest


# (used, the counted hits' times, oldest first)
_MovingLook = tuple[int, "list[float] | None"]


class _MovingWindow(_Table["list[float]", _MovingLook]):
    def useful_until(self, entry: list[float]) -> float:
        return entry[-1] + self.expiry if entry else -math.inf

    def look(self, key: str, now: float) -> _MovingLook:
        hits = self.entry(key, now)
        if hits is None:
            return 0, None
        # From the front, up to the first hit still counted: after a clock step back the
        # times are out of order, and the hits behind that one keep counting (refusing).
        oldest_counted = now - self.expiry
        gone = 0
        for hit in hits:
            if hit >= oldest_counted:
                break
            gone += 1
        if gone:
            del hits[:gone]
        return len(hits), hits

    def charge(self, key: str, now: float, look: _MovingLook, cost: int) -> None:
        hits = look[1]
        if hits is None:
            hits = []
        hits.extend(repeat(now, cost))
        self._charged(key, hits)

    def reset_after(self, now: float, look: _MovingLook, charged: bool) -> float:
        # As limits reports it: when the oldest counted hit leaves the window,
        # a whole window when there is none.
        hits = look[1]
        if not hits:  # also right for a first hit just charged: it leaves a window from now
            return float(self.expiry)
        return hits[0] + self.expiry - now


_TABLES: dict[str, type[_FixedWindow | _SlidingWindowCounter | _MovingWindow]] = {
    "sliding-window-counter": _SlidingWindowCounter,
    "moving-window": _MovingWindow,
    "fixed-window": _FixedWindow,
}

_AnyTable = _FixedWindow | _SlidingWindowCounter | _MovingWindow


class MemoryCounters:
    """Hits per (policy, key) of one process, decided and charged synchronously.

    ``clock`` gives the wall-clock seconds that windows are aligned to; tests
    pass a settable one.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._policies: dict[Policy, tuple[_AnyTable, ...]] = {}
        # limits keys counters by policy name, amount and window, so two policies
        # alike in those share counts; kept so, per strategy.
        self._tables: dict[tuple[str, str, int, int], _AnyTable] = {}

    def decide(
        self, policy: Policy, key: str, cost: int = 1, *, charge: bool, report: bool = False
    ) -> Decision:
        """Does ``cost`` fit under every limit of ``policy`` for ``key``?

        With ``charge``, all limits are charged if all allow and none if one
        refuses. With ``report``, the decision carries the quotas as they stand
        afterwards.
        """
        now = self._clock()
        tables = self._policies.get(policy) or self._register(policy)
        # Plain loops: policies have one or two limits, and comprehensions cost
        # a function call each (on a path every request takes).
        looks: list[Any] = []
        exceeded = None
        for index, table in enumerate(tables):
            look = table.look(key, now)
            looks.append(look)
            if exceeded is None and look[0] + cost > table.amount:
                exceeded = index
        charged = charge and exceeded is None
        if charged:
            for index, table in enumerate(tables):
                table.charge(key, now, looks[index], cost)
        if report:
            quotas = self._quotas(tables, looks, now, exceeded, cost if charged else 0)
            return Decision(exceeded is None, exceeded, quotas=quotas)
        if exceeded is None:
            return _ALLOWED
        return Decision(False, exceeded)

    def usage(self, policy: Policy, key: str, *, exceeded: int | None = None) -> tuple[Quota, ...]:
        """Where each limit of ``policy`` stands for ``key``; ``exceeded`` reports as spent."""
        now = self._clock()
        tables = self._policies.get(policy) or self._register(policy)
        looks: list[Any] = [table.look(key, now) for table in tables]
        return self._quotas(tables, looks, now, exceeded, 0)

    def __len__(self) -> int:
        """Entries held, over all policies and limits."""
        return sum(len(table.entries) for table in self._tables.values())

    @staticmethod
    def _quotas(
        tables: tuple[_AnyTable, ...],
        looks: list[Any],
        now: float,
        exceeded: int | None,
        charged: int,
    ) -> tuple[Quota, ...]:
        quotas = []
        for index, table in enumerate(tables):
            look = looks[index]
            remaining = 0 if index == exceeded else table.amount - look[0] - charged
            reset_after = math.ceil(table.reset_after(now, look, charged > 0))
            quotas.append(
                Quota(
                    table.name,
                    table.amount,
                    table.expiry,
                    remaining if remaining > 0 else 0,
                    reset_after if reset_after > 0 else 0,
                )
            )
        return tuple(quotas)

    def _register(self, policy: Policy) -> tuple[_AnyTable, ...]:
        tables = []
        for item in policy.items:
            expiry = item.get_expiry()
            identity = (policy.name, policy.strategy, item.amount, expiry)
            table = self._tables.get(identity)
            if table is None:
                table = _TABLES[policy.strategy](f"{policy.name}-{expiry}s", item.amount, expiry)
                self._tables[identity] = table
            tables.append(table)
        self._policies[policy] = registered = tuple(tables)
        return registered


_ALLOWED = Decision(True)
