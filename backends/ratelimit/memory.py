"""Rate limits counted in this process (``memory://``): ``limits``' three strategies, synchronously.

:class:`MemoryRateLimit` answers to the same numbers as ``limits``' async
``MemoryStorage`` driven the way :class:`~backends.ratelimit.limits.LimitsRateLimit`
drives a storage (``tests/test_ratelimit_backends.py`` checks it against that, by
property tests): the same window arithmetic, the same floating-point expressions, the
same expiry. It costs about a third as much a check (see ``bench/ratelimit_check.py``),
needs no lock (one thread, no awaits) and takes its clock as an argument.

- **sliding-window-counter**: counts per window ``int(now / expiry)``, each kept for two
  windows after its first hit; the previous window weighs as much of it as the current
  window still has to go.
- **moving-window**: the times of the hits of the last ``expiry`` seconds, oldest first.
- **fixed-window**: one count per key, from its first hit for ``expiry`` seconds.

Every (policy, limit) has a table of its own, its entries ordered by their last
charge, which for one table is nearly the order in which they become useless: each
call drops expired entries from the front, never sweeping all keys.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from itertools import repeat
from typing import Any

from backends.ratelimit import DEFAULT_MAX_KEYS, Decision, Policy, Quota
from backends.ratelimit.counted import CountedLimiter

# A look at one key of one table: (used, ...), what the limit counts for the key now
# (``cost`` more fits if ``used + cost <= amount``), then what charging and reporting need.
Look = tuple[Any, ...]


class _Table:
    """The entries of one limit of one policy, least recently charged first."""

    __slots__ = ("amount", "entries", "expiry", "horizon", "name")

    def __init__(self, name: str, amount: int, expiry: int) -> None:
        self.name = name
        self.amount = amount
        self.expiry = expiry
        self.entries: OrderedDict[str, Any] = OrderedDict()
        # No entry expires before this; stale only towards earlier (one extra look).
        self.horizon = math.inf

    def entry(self, key: str, now: float) -> Any:
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

    def _charged(self, key: str, entry: Any) -> None:
        """Keep ``entry`` as the most recently charged of ``key``."""
        entries = self.entries
        entries[key] = entry
        entries.move_to_end(key)
        if len(entries) == 1:
            self.horizon = self.useful_until(entry)

    def useful_until(self, entry: Any) -> float:
        """The time after which ``entry`` can no longer count."""
        raise NotImplementedError

    def look(self, key: str, now: float) -> Look:
        raise NotImplementedError

    def charge(self, key: str, now: float, look: Look, cost: int) -> Look:
        """Charge ``cost``: the look after it."""
        raise NotImplementedError

    def reset_after(self, now: float, look: Look) -> int:
        """Seconds until the count goes down (the RateLimit ``t`` value), as limits reports
        it: rounded up from the time it goes down, less now (floating point included)."""
        raise NotImplementedError


class _FixedWindow(_Table):
    """Entries ``[count, expires]``: limits' counter with its expiry set by the first hit."""

    def useful_until(self, entry: list[float]) -> float:
        return entry[1]

    def look(self, key: str, now: float) -> Look:
        entry = self.entry(key, now)
        if entry is not None and entry[1] > now:
            return entry[0], entry
        return 0, None

    def charge(self, key: str, now: float, look: Look, cost: int) -> Look:
        used, entry = look
        if entry is None:
            entry = [cost, now + self.expiry]
            self._charged(key, entry)
        else:
            entry[0] += cost
            self.entries.move_to_end(key)
        return used + cost, entry

    def reset_after(self, now: float, look: Look) -> int:
        entry = look[1]
        return 0 if entry is None else math.ceil(entry[1] - now)


class _SlidingWindowCounter(_Table):
    """Entries ``[index, count, expires, ...]``: limits' per-window counters of a key that
    have not expired yet, oldest first (at most three: a count lives two windows)."""

    def useful_until(self, entry: list[float]) -> float:
        return entry[-1]

    def look(self, key: str, now: float) -> Look:
        expiry = self.expiry
        index = int(now / expiry)
        previous_index = int((now - expiry) / expiry)  # limits' own expression, not index - 1
        entry = self.entry(key, now)
        previous = current = 0
        if entry is not None:
            for at in range(0, len(entry), 3) if len(entry) > 3 else (0,):
                if entry[at + 2] > now:
                    if entry[at] == index:
                        current = entry[at + 1]
                    if entry[at] == previous_index:
                        previous = entry[at + 1]
        previous_ttl = (1 - (((now - expiry) / expiry) % 1)) * expiry if previous else 0.0
        used = math.floor(previous * previous_ttl / expiry + current)
        return used, entry, index, previous, previous_ttl, current

    def charge(self, key: str, now: float, look: Look, cost: int) -> Look:
        _, entry, index, previous, previous_ttl, current = look
        expiry = self.expiry
        if entry is None:
            entry = [index, cost, now + 2 * expiry]
        elif entry[-3] == index and entry[-1] > now:
            entry[-2] += cost
        else:
            # Another window than the newest: drop the counts that have expired, then
            # charge this window's (a clock stepped back may find it among the older).
            kept: list[float] = []
            found = False
            for at in range(0, len(entry), 3):
                if entry[at + 2] > now:
                    kept += entry[at : at + 3]
                    if entry[at] == index:
                        kept[-2] += cost
                        found = True
            if not found:
                kept += (index, cost, now + 2 * expiry)
            entry[:] = kept
        self._charged(key, entry)
        current += cost
        used = math.floor(previous * previous_ttl / expiry + current)
        return used, entry, index, previous, previous_ttl, current

    def reset_after(self, now: float, look: Look) -> int:
        _, _, _, previous, previous_ttl, current = look
        if not (previous or current):
            return 0
        expiry = self.expiry
        soonest = math.inf
        if previous:
            soonest = previous_ttl % (expiry / previous)
        if current:
            current_ttl = (1 - ((now / expiry) % 1)) * expiry + expiry
            soonest = min(soonest, current_ttl % expiry)
        return math.ceil(now + soonest - now)


class _MovingWindow(_Table):
    """Entries: the times of a key's hits, oldest first."""

    def useful_until(self, entry: list[float]) -> float:
        return entry[-1] + self.expiry if entry else -math.inf

    def look(self, key: str, now: float) -> Look:
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

    def charge(self, key: str, now: float, look: Look, cost: int) -> Look:
        used, hits = look
        if hits is None:
            hits = []
        hits.extend(repeat(now, cost))
        self._charged(key, hits)
        return used + cost, hits

    def reset_after(self, now: float, look: Look) -> int:
        hits = look[1]
        if not hits:
            # limits says about a whole window, or 0 while its background task has not
            # yet swept the old hits: a whole window, as for a key never hit.
            return self.expiry
        oldest: float = hits[0]
        return math.ceil(oldest + self.expiry - now)


_TABLES: dict[str, type[_Table]] = {
    "sliding-window-counter": _SlidingWindowCounter,
    "moving-window": _MovingWindow,
    "fixed-window": _FixedWindow,
}


class MemoryRateLimit(CountedLimiter):
    """Hits per (policy, key) of one process, decided and charged synchronously.

    ``clock`` gives the wall-clock seconds windows count on (tests pass one they move);
    ``monotonic`` times the key-overflow warnings.
    """

    def __init__(
        self,
        *,
        max_keys: int = DEFAULT_MAX_KEYS,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(max_keys=max_keys, clock=clock, monotonic=monotonic)
        self._clock = clock
        self._policies: dict[Policy, tuple[_Table, ...]] = {}
        # limits keys counters by policy name, amount and window, so two policies
        # alike in those share counts; kept so, per strategy.
        self._tables: dict[tuple[str, str, int, int], _Table] = {}

    async def hit(
        self, policy: Policy, key: str, *, cost: int = 1, report: bool = False
    ) -> Decision:
        return self._decide(policy, self._charged_key(policy, key), cost, True, report)

    async def peek(
        self, policy: Policy, key: str, *, cost: int = 1, report: bool = False
    ) -> Decision:
        return self._decide(policy, self.keys.look(policy, key), cost, False, report)

    def _decide(self, policy: Policy, key: str, cost: int, charge: bool, report: bool) -> Decision:
        now = self._clock()
        tables = self._policies.get(policy) or self._register(policy)
        # Plain loops: policies have one or two limits, and comprehensions cost
        # a function call each (on a path every request takes).
        looks: list[Look] = []
        exceeded = None
        for index, table in enumerate(tables):
            look = table.look(key, now)
            looks.append(look)
            if exceeded is None and look[0] + cost > table.amount:
                exceeded = index
        if charge and exceeded is None:
            for index, table in enumerate(tables):
                looks[index] = table.charge(key, now, looks[index], cost)
        self._counted(policy, exceeded is None, charge)
        if report:
            quotas = _quotas(tables, looks, now, exceeded)
            return Decision(exceeded is None, exceeded, quotas=quotas)
        if exceeded is None:
            return _ALLOWED
        return Decision(False, exceeded)

    async def usage(
        self, policy: Policy, key: str, *, exceeded: int | None = None
    ) -> tuple[Quota, ...]:
        key = self.keys.look(policy, key)
        now = self._clock()
        tables = self._policies.get(policy) or self._register(policy)
        return _quotas(tables, [table.look(key, now) for table in tables], now, exceeded)

    async def ping(self) -> None:
        """Memory always answers."""

    async def aclose(self) -> None:
        """Nothing to close; the counters go with the object."""

    def __len__(self) -> int:
        """Entries held, over all policies and limits."""
        return sum(len(table.entries) for table in self._tables.values())

    def _register(self, policy: Policy) -> tuple[_Table, ...]:
        tables = []
        for item in policy.items:
            identity = (policy.name, policy.strategy, item.amount, item.window)
            table = self._tables.get(identity)
            if table is None:
                name = f"{policy.name}-{item.window}s"
                table = self._tables[identity] = _TABLES[policy.strategy](
                    name, item.amount, item.window
                )
            tables.append(table)
        self._policies[policy] = registered = tuple(tables)
        return registered


def _quotas(
    tables: tuple[_Table, ...], looks: list[Look], now: float, exceeded: int | None
) -> tuple[Quota, ...]:
    quotas = []
    for index, table in enumerate(tables):
        look = looks[index]
        remaining = 0 if index == exceeded else table.amount - look[0]
        reset_after = table.reset_after(now, look)
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


_ALLOWED = Decision(True)
