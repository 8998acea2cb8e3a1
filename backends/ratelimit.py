"""Rate limits counted in process memory, or shared through Redis with the ``limits`` library.

A :class:`Policy` names a set of limits in the ``limits`` notation
(``"10/minute;100/hour"``) and a strategy; a :class:`RateLimiter` counts hits
against a policy for an opaque key (the web layer decides whom a key names).
``memory://`` counts in :class:`~backends.ratelimit_memory.MemoryCounters`,
synchronously and atomically; Redis through ``limits``' async strategies.

The storage is the only thing that can fail (Redis; memory cannot). When it does,
the limiter decides without it: it lets requests through (fail-open, the default:
rate limiting protects capacity, not identity) or refuses them (fail-closed).
Either way the decision is counted in :attr:`RateLimiter.counts`, a warning is
logged at most once per :data:`LOG_INTERVAL_SECONDS`, and the storage is left
alone for :data:`STORAGE_RETRY_SECONDS` so a dead Redis costs requests nothing
meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio
from limits.aio.storage import RedisStorage, Storage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.aio.strategies import RateLimiter as Strategy
from limits.errors import StorageError

from backends.ratelimit_keys import OVERFLOW_KEY, KeyBound
from backends.ratelimit_memory import MemoryCounters
from backends.ratelimit_policy import Decision, Policy, Quota, StrategyName, parse_limits
from backends.telemetry import Sample

__all__ = [
    "DEFAULT_MAX_KEYS",
    "OVERFLOW_KEY",
    "Decision",
    "Policy",
    "Quota",
    "RateLimiter",
    "StrategyName",
    "check_storage_uri",
    "parse_limits",
]

log = logging.getLogger("jotguard.ratelimit")

STORAGE_RETRY_SECONDS = 1.0
LOG_INTERVAL_SECONDS = 60.0
DEFAULT_MAX_KEYS = 100_000

# wrap_exceptions=True turns driver errors into StorageError; a socket error or
# timeout that escapes the wrapping must not become a 500 either.
_STORAGE_ERRORS = (StorageError, OSError, asyncio.TimeoutError)
_STRATEGIES: dict[StrategyName, Callable[[Storage], Strategy]] = {
    "sliding-window-counter": SlidingWindowCounterRateLimiter,
    "moving-window": MovingWindowRateLimiter,
    "fixed-window": FixedWindowRateLimiter,
}


def check_storage_uri(uri: str) -> str:
    """``memory://`` or a ``redis://`` / ``rediss://`` URL, stripped.

    :raises ValueError: anything else.
    """
    value = uri.strip()
    if value == "memory://":
        return value
    parts = urlsplit(value)
    if parts.scheme in {"redis", "rediss"} and parts.hostname:
        return value
    raise ValueError("must be memory:// or a redis://host:port/db URL")


class RateLimiter:
    """Counts hits per (policy, key) in ``memory://`` or Redis storage.

    Build it inside the event loop that uses it, and ``await aclose()`` at the end.
    ``counts[(policy_name, outcome)]`` counts refusals (``limited``) and decisions
    made without the storage (``failed_open`` / ``failed_closed``) for metrics.
    ``clock`` times the storage's rests and log intervals; ``window_clock`` is the
    wall clock ``memory://`` windows are counted on (Redis keeps its own time).
    ``max_keys`` bounds the keys each policy counts at once, in either storage (see
    :mod:`backends.ratelimit_keys`: a full policy evicts nothing, newcomers share one key).
    """

    def __init__(
        self,
        storage_uri: str = "memory://",
        *,
        key_prefix: str = "jotguard:ratelimit",
        timeout: float = 0.5,
        fail_closed: bool = False,
        clock: Callable[[], float] = time.monotonic,
        window_clock: Callable[[], float] = time.time,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        self.fail_closed = fail_closed
        self.keys = KeyBound(max_keys, window_clock)
        self.counts: Counter[tuple[str, str]] = Counter()
        self._clock = clock
        self._timeout = timeout
        self._pool: redis.asyncio.ConnectionPool | None = None
        self._memory: MemoryCounters | None = None
        self._storage: Storage | None = None
        uri = check_storage_uri(storage_uri)
        if uri == "memory://":
            self._memory = MemoryCounters(window_clock)
        else:
            self._storage = self._open_redis(uri, key_prefix, timeout)
        self._strategies: dict[str, Strategy] = {}
        self._skip_storage_until = -math.inf
        self._failing = False
        self._last_logged = -math.inf
        self._unlogged = 0
        self._last_error: BaseException | None = None
        self._outage_logged = False
        self._overflow_logged: dict[str, float] = {}

    @property
    def in_process(self) -> bool:
        """Counts in this process's memory: answers without I/O, so calls gain
        nothing from running concurrently."""
        return self._memory is not None

    def _open_redis(self, uri: str, key_prefix: str, timeout: float) -> Storage:
        # Our own pool: short timeouts and no retries with backoff (redis-py's
        # default client retries three times with up to seconds of sleep), so a
        # dead Redis costs a request milliseconds; and we can close it.
        self._pool = redis.asyncio.ConnectionPool.from_url(
            uri, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        return RedisStorage(
            uri,
            wrap_exceptions=True,
            implementation="redispy",
            key_prefix=key_prefix,
            connection_pool=self._pool,  # type: ignore[arg-type]
        )

    def _strategy(self, policy: Policy) -> Strategy:
        strategy = self._strategies.get(policy.strategy)
        if strategy is None:
            assert self._storage is not None, "memory:// counts without limits strategies"
            strategy = _STRATEGIES[policy.strategy](self._storage)
            self._strategies[policy.strategy] = strategy
        return strategy

    def hit(
        self, policy: Policy, key: str, *, cost: int = 1, report: bool = False
    ) -> Coroutine[Any, Any, Decision]:
        """Charge ``cost`` to every limit of ``policy`` for ``key``, shortest window first.

        In memory, all limits are charged or none. In Redis, the limits are asked
        one by one and the first that refuses stops it; the limits before it stay
        charged. ``report``: the decision carries the quotas (see :meth:`usage`),
        unless the storage failed.
        """
        # The coroutine itself, not one awaiting it: a layer less on every request.
        return self._decide(policy, key, cost, charge=True, report=report)

    def peek(
        self, policy: Policy, key: str, *, cost: int = 1, report: bool = False
    ) -> Coroutine[Any, Any, Decision]:
        """Would ``cost`` more hits fit under every limit? Charges nothing."""
        return self._decide(policy, key, cost, charge=False, report=report)

    async def _decide(
        self, policy: Policy, key: str, cost: int, *, charge: bool, report: bool
    ) -> Decision:
        if charge:
            key = self.keys.charge(policy, key)
            if key == OVERFLOW_KEY:
                self._overflowed(policy)
        else:
            key = self.keys.look(policy, key)
        if self._memory is not None:
            # Cannot fail, so it never rests and is never "answering again".
            decision = self._memory.decide(policy, key, cost, charge=charge, report=report)
            if not decision.allowed:
                self.counts[(policy.name, "limited")] += 1
            elif charge:
                self.counts[(policy.name, "allowed")] += 1
            return decision
        if self._storage_resting():
            return self._without_storage(policy)
        strategy = self._strategy(policy)
        ask = strategy.hit if charge else strategy.test
        exceeded = None
        try:
            for index, item in enumerate(policy.items):
                if not await ask(item, policy.name, key, cost=cost):
                    exceeded = index
                    break
        except _STORAGE_ERRORS as exc:
            return self._without_storage(policy, exc)
        self._storage_answered()
        if exceeded is not None:
            self.counts[(policy.name, "limited")] += 1
        elif charge:
            self.counts[(policy.name, "allowed")] += 1
        quotas = await self.usage(policy, key, exceeded=exceeded) if report else None
        return Decision(exceeded is None, exceeded, quotas=quotas)

    async def usage(
        self, policy: Policy, key: str, *, exceeded: int | None = None
    ) -> tuple[Quota, ...] | None:
        """Where each limit of ``policy`` stands for ``key``; None if the storage cannot say.

        ``exceeded`` (from a refusing :class:`Decision`) reports that limit as spent:
        the sliding-window counter may refuse while its rounded remainder is still 1.
        """
        key = self.keys.look(policy, key)
        if self._memory is not None:
            return self._memory.usage(policy, key, exceeded=exceeded)
        if self._storage_resting():
            return None
        strategy = self._strategy(policy)
        reads = [strategy.get_window_stats(item, policy.name, key) for item in policy.items]
        try:
            # One limit (the usual case) needs no tasks; several are read concurrently.
            windows = [await reads[0]] if len(reads) == 1 else await asyncio.gather(*reads)
        except _STORAGE_ERRORS as exc:
            self._storage_failed(exc)
            return None
        self._storage_answered()
        now = time.time()
        return tuple(
            Quota(
                name=f"{policy.name}-{item.get_expiry()}s",
                limit=item.amount,
                window=item.get_expiry(),
                remaining=0 if index == exceeded else max(0, window.remaining),
                reset_after=max(0, math.ceil(window.reset_time - now)),
            )
            for index, (item, window) in enumerate(zip(policy.items, windows, strict=True))
        )

    async def ping(self) -> None:
        """Readiness: raises unless the storage answers."""
        if not await self.check():
            raise ConnectionError("the rate-limit storage does not answer")

    async def check(self) -> bool:
        """True if the storage answers (for readiness probes); memory always does."""
        if self._storage is None:
            return True
        try:
            return bool(await self._storage.check())
        except _STORAGE_ERRORS:
            return False

    def telemetry(self) -> Iterator[Sample]:
        failures: Counter[str] = Counter()
        for (policy, outcome), count in list(self.counts.items()):
            yield Sample(
                "ratelimit_decisions_total",
                "counter",
                "Rate-limit decisions: allowed, limited, failed_open, failed_closed",
                count,
                {"policy": policy, "decision": outcome},
            )
            if outcome.startswith("failed_"):
                failures[policy] += count
        for policy, count in failures.items():
            yield Sample(
                "ratelimit_storage_failures_total",
                "counter",
                "Decisions made without the rate-limit storage",
                count,
                {"policy": policy},
            )
        for policy, count in list(self.keys.overflowed.items()):
            yield Sample(
                "ratelimit_key_overflows_total",
                "counter",
                "Charges that found their policy at its key bound and shared the overflow key",
                count,
                {"policy": policy},
            )

    def _overflowed(self, policy: Policy) -> None:
        now = self._clock()
        if now - self._overflow_logged.get(policy.name, -math.inf) < LOG_INTERVAL_SECONDS:
            return
        self._overflow_logged[policy.name] = now
        log.warning(
            "rate-limit policy %s counts %d keys, its bound: new keys share one budget until"
            " counters expire (raise JOTGUARD_RATELIMIT_MAX_KEYS if this is not a flood)",
            policy.name,
            self.keys.max_keys,
        )

    @property
    def storage_failures(self) -> int:
        """Decisions made without the storage, open or closed, since start."""
        return sum(n for (_, outcome), n in self.counts.items() if outcome.startswith("failed_"))

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()

    def _storage_resting(self) -> bool:
        now = self._clock()
        if now < self._skip_storage_until:
            return True
        if self._failing:
            # This caller probes the storage; everyone else keeps deciding without it
            # until the probe answers, so a black-holed Redis delays one request, not all.
            self._skip_storage_until = now + STORAGE_RETRY_SECONDS + self._timeout
        return False

    def _without_storage(self, policy: Policy, exc: BaseException | None = None) -> Decision:
        if exc is not None:
            self._storage_failed(exc)
        outcome = "failed_closed" if self.fail_closed else "failed_open"
        self.counts[(policy.name, outcome)] += 1
        self._unlogged += 1
        self._maybe_log()
        return Decision(not self.fail_closed, storage_failed=True)

    def _storage_failed(self, exc: BaseException) -> None:
        self._skip_storage_until = self._clock() + STORAGE_RETRY_SECONDS
        self._failing = True
        self._last_error = exc.__cause__ or exc

    def _maybe_log(self) -> None:
        now = self._clock()
        if now - self._last_logged < LOG_INTERVAL_SECONDS:
            return
        self._last_logged = now
        self._outage_logged = True
        error = self._last_error
        log.warning(
            "rate-limit storage unavailable (%s: %s); failing %s; decisions made without it"
            " since the last report: %d",
            type(error).__name__,
            error,
            "closed" if self.fail_closed else "open",
            self._unlogged,
        )
        self._unlogged = 0

    def _storage_answered(self) -> None:
        if self._failing:
            self._failing = False
            self._skip_storage_until = -math.inf
        # One line per outage that was reported, so a flapping storage logs at most
        # twice per interval.
        if self._outage_logged:
            self._outage_logged = False
            log.warning(
                "rate-limit storage answers again; decisions made without it since the last"
                " report: %d",
                self._unlogged,
            )
            self._unlogged = 0
