"""Rate limits over the ``limits`` library's async API, in memory or shared through Redis.

A :class:`Policy` names a set of limits in the ``limits`` notation
(``"10/minute;100/hour"``) and a strategy; a :class:`RateLimiter` counts hits
against a policy for an opaque key (the web layer decides whom a key names).

The storage is the only thing that can fail. When it does, the limiter decides
without it: it lets requests through (fail-open, the default: rate limiting
protects capacity, not identity) or refuses them (fail-closed). Either way the
decision is counted in :attr:`RateLimiter.counts`, a warning is logged at most
once per :data:`LOG_INTERVAL_SECONDS`, and the storage is left alone for
:data:`STORAGE_RETRY_SECONDS` so a dead Redis costs requests nothing meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

import redis.asyncio
from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.aio.strategies import RateLimiter as Strategy
from limits.errors import StorageError

from backends.telemetry import Sample

log = logging.getLogger("jotguard.ratelimit")

StrategyName = Literal["sliding-window-counter", "moving-window", "fixed-window"]

STORAGE_RETRY_SECONDS = 1.0
LOG_INTERVAL_SECONDS = 60.0

# wrap_exceptions=True turns driver errors into StorageError; a socket error or
# timeout that escapes the wrapping must not become a 500 either.
_STORAGE_ERRORS = (StorageError, OSError, asyncio.TimeoutError)
_STRATEGIES: dict[str, Callable[[Storage], Strategy]] = {
    "sliding-window-counter": SlidingWindowCounterRateLimiter,
    "moving-window": MovingWindowRateLimiter,
    "fixed-window": FixedWindowRateLimiter,
}
_POLICY_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def parse_limits(notation: str) -> tuple[RateLimitItem, ...]:
    """``"10/minute;100/hour"`` as ``limits`` items, shortest window first.

    :raises ValueError: bad notation, a zero amount or two limits on one window.
    """
    try:
        items = parse_many(notation.strip())
    except ValueError:
        raise ValueError("must be limits such as 10/minute;100/hour") from None
    if any(item.amount < 1 for item in items):
        raise ValueError("every limit must allow at least one request")
    windows = [item.get_expiry() for item in items]
    if len(set(windows)) != len(windows):
        raise ValueError("two limits share one window")
    return tuple(sorted(items, key=lambda item: item.get_expiry()))


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


@dataclass(frozen=True)
class Policy:
    """A named set of limits, e.g. ``Policy("search", "30/minute")``.

    ``strategy`` is one of ``limits``' strategies: the sliding-window counter
    (cheap, nearly exact) by default, the moving window where exactness matters
    (token and login endpoints). ``per_client`` asks the web layer to count the
    ``client_id`` a request offers together with its IP instead of the IP alone
    (token endpoints, which also check credentials).

    :raises ValueError: a bad name, notation or strategy.
    """

    name: str
    limits: str
    strategy: StrategyName = "sliding-window-counter"
    per_client: bool = False
    items: tuple[RateLimitItem, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _POLICY_NAME.fullmatch(self.name):
            raise ValueError(f"policy name {self.name!r}: use 1-64 of A-Z a-z 0-9 _ . -")
        if self.strategy not in _STRATEGIES:
            raise ValueError(f"policy {self.name}: unknown strategy {self.strategy!r}")
        object.__setattr__(self, "items", parse_limits(self.limits))


@dataclass(frozen=True, slots=True)
class Quota:
    """Where one limit of a policy stands for one key (what the RateLimit headers say)."""

    name: str
    limit: int
    window: int
    remaining: int
    reset_after: int
    """Whole seconds until the window has room again."""


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    exceeded: int | None = None
    """Index in ``policy.items`` of the limit that refused, if one did."""
    storage_failed: bool = False
    """The storage could not answer; ``allowed`` is the fail-open/closed policy."""


class RateLimiter:
    """Counts hits per (policy, key) in ``memory://`` or Redis storage.

    Build it inside the event loop that uses it, and ``await aclose()`` at the end.
    ``counts[(policy_name, outcome)]`` counts refusals (``limited``) and decisions
    made without the storage (``failed_open`` / ``failed_closed``) for metrics.
    """

    def __init__(
        self,
        storage_uri: str = "memory://",
        *,
        key_prefix: str = "jotguard:ratelimit",
        timeout: float = 0.5,
        fail_closed: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fail_closed = fail_closed
        self.counts: Counter[tuple[str, str]] = Counter()
        self._clock = clock
        self._timeout = timeout
        self._pool: redis.asyncio.ConnectionPool | None = None
        self._storage = self._open(check_storage_uri(storage_uri), key_prefix, timeout)
        self._strategies: dict[str, Strategy] = {}
        self._skip_storage_until = -math.inf
        self._failing = False
        self._last_logged = -math.inf
        self._unlogged = 0
        self._last_error: BaseException | None = None
        self._outage_logged = False

    def _open(self, uri: str, key_prefix: str, timeout: float) -> Storage:
        if uri == "memory://":
            return MemoryStorage(wrap_exceptions=True)
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
            strategy = _STRATEGIES[policy.strategy](self._storage)
            self._strategies[policy.strategy] = strategy
        return strategy

    async def hit(self, policy: Policy, key: str, *, cost: int = 1) -> Decision:
        """Charge ``cost`` to every limit of ``policy`` for ``key``, shortest window first.

        Stops at the first limit that refuses; the limits before it stay charged.
        """
        return await self._decide(policy, key, cost, charge=True)

    async def peek(self, policy: Policy, key: str, *, cost: int = 1) -> Decision:
        """Would ``cost`` more hits fit under every limit? Charges nothing."""
        return await self._decide(policy, key, cost, charge=False)

    async def _decide(self, policy: Policy, key: str, cost: int, *, charge: bool) -> Decision:
        if self._storage_resting():
            return self._without_storage(policy)
        strategy = self._strategy(policy)
        ask = strategy.hit if charge else strategy.test
        try:
            for index, item in enumerate(policy.items):
                if not await ask(item, policy.name, key, cost=cost):
                    self._storage_answered()
                    self.counts[(policy.name, "limited")] += 1
                    return Decision(False, exceeded=index)
        except _STORAGE_ERRORS as exc:
            return self._without_storage(policy, exc)
        self._storage_answered()
        if charge:
            self.counts[(policy.name, "allowed")] += 1
        return Decision(True)

    async def usage(
        self, policy: Policy, key: str, *, exceeded: int | None = None
    ) -> tuple[Quota, ...] | None:
        """Where each limit of ``policy`` stands for ``key``; None if the storage cannot say.

        ``exceeded`` (from a refusing :class:`Decision`) reports that limit as spent:
        the sliding-window counter may refuse while its rounded remainder is still 1.
        """
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
        """True if the storage answers (for readiness probes)."""
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

    @property
    def storage_failures(self) -> int:
        """Decisions made without the storage, open or closed, since start."""
        return sum(n for (_, outcome), n in self.counts.items() if outcome.startswith("failed_"))

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
        timer = getattr(self._storage, "timer", None)
        if isinstance(timer, asyncio.Task):
            timer.cancel()

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
