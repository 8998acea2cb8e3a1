"""Rate limits counted in a ``limits`` async storage: Redis, shared by every instance.

:class:`LimitsRateLimit` runs ``limits``' strategies over any of its async storages;
:meth:`LimitsRateLimit.redis` builds the one jotguard serves (``redis://``,
``rediss://``). A policy is charged all or none: a one-limit policy with one atomic
hit (the fixed window's excepted, since ``limits`` counts a refused fixed-window hit);
several limits are each tested first, and charged only if all have room. (Between the
test and the charge another instance may take the last slot; the refusal then stands
and the limits charged before it stay charged. Within one process it cannot happen.)

The storage is the only thing that can fail. When it does, the limiter decides
without it: it lets requests through (fail-open, the default: rate limiting protects
capacity, not identity) or refuses them (fail-closed). Either way the decision is
counted, a warning is logged at most once per :data:`LOG_INTERVAL_SECONDS`, and the
storage is left alone for :data:`STORAGE_RETRY_SECONDS` so a dead Redis costs requests
nothing meanwhile. A storage that answers slower than ``timeout`` (per decision, per
usage report) has failed too.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

from limits import RateLimitItem
from limits.aio.storage import RedisStorage, Storage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.aio.strategies import RateLimiter as Strategy
from limits.errors import StorageError
from limits.util import granularity_from_string

from backends.ratelimit import DEFAULT_MAX_KEYS, Decision, Policy, Quota, StrategyName
from backends.ratelimit.counted import LOG_INTERVAL_SECONDS, CountedLimiter, log
from backends.storage.redis import SharedRedis, deadline, redis_client

STORAGE_RETRY_SECONDS = 1.0

# wrap_exceptions=True turns driver errors into StorageError; a socket error or
# timeout that escapes the wrapping must not become a 500 either.
_STORAGE_ERRORS = (StorageError, OSError, asyncio.TimeoutError)
_STRATEGIES: dict[StrategyName, Callable[[Storage], Strategy]] = {
    "sliding-window-counter": SlidingWindowCounterRateLimiter,
    "moving-window": MovingWindowRateLimiter,
    "fixed-window": FixedWindowRateLimiter,
}


class LimitsRateLimit(CountedLimiter):
    """Counts hits per (policy, key) in a ``limits`` async ``storage``.

    ``clock`` is the wall clock of keys' lifetimes and reset times: the one the
    storage counts on (``limits`` reads ``time.time``; only a test that moves that clock
    too passes another). ``monotonic`` times the storage's rests and log intervals.
    """

    client: SharedRedis | None = None
    """The Redis client whose pool a Redis storage counts on, closed with the limiter."""

    def __init__(
        self,
        storage: Storage,
        *,
        timeout: float = 0.5,
        fail_closed: bool = False,
        max_keys: int = DEFAULT_MAX_KEYS,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(max_keys=max_keys, clock=clock, monotonic=monotonic)
        self._strategies: dict[str, Strategy] = {}
        self._items: dict[Policy, tuple[RateLimitItem, ...]] = {}
        self.fail_closed = fail_closed
        self._storage = storage
        self._clock = clock
        self._timeout = timeout
        self._skip_storage_until = -math.inf
        self._failing = False
        self._last_logged = -math.inf
        self._unlogged = 0
        self._last_error: BaseException | None = None
        self._outage_logged = False

    @classmethod
    def redis(
        cls,
        uri: str,
        *,
        key_prefix: str = "jotguard:ratelimit",
        timeout: float = 0.5,
        fail_closed: bool = False,
        max_keys: int = DEFAULT_MAX_KEYS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> LimitsRateLimit:
        """Counters in the Redis at ``uri``, under ``key_prefix``, on the pool every user
        of ``uri`` shares (:mod:`backends.storage.redis`): ``timeout`` bounds each
        decision here, not the pool's sockets."""
        # limits takes a pool, not a client: its own client on our pool, which we close.
        client = redis_client(uri)
        store = RedisStorage(
            uri,
            wrap_exceptions=True,
            implementation="redispy",
            key_prefix=key_prefix,
            connection_pool=client.connection_pool,  # type: ignore[arg-type]
        )
        limiter = cls(
            store, timeout=timeout, fail_closed=fail_closed, max_keys=max_keys, monotonic=monotonic
        )
        limiter.client = client
        return limiter

    def _strategy(self, policy: Policy) -> Strategy:
        strategy = self._strategies.get(policy.strategy)
        if strategy is None:
            strategy = self._strategies[policy.strategy] = _STRATEGIES[policy.strategy](
                self._storage
            )
        return strategy

    def _limits_items(self, policy: Policy) -> tuple[RateLimitItem, ...]:
        items = self._items.get(policy)
        if items is None:
            # The same items limits would parse from the notation: the same Redis keys.
            items = self._items[policy] = tuple(
                granularity_from_string(item.granularity)(item.amount, item.multiples)
                for item in policy.items
            )
        return items

    async def hit(
        self, policy: Policy, key: str, *, cost: int = 1, report: bool = False
    ) -> Decision:
        return await self._decide(policy, self._charged_key(policy, key), cost, True, report)

    async def peek(
        self, policy: Policy, key: str, *, cost: int = 1, report: bool = False
    ) -> Decision:
        return await self._decide(policy, self.keys.look(policy, key), cost, False, report)

    async def _decide(
        self, policy: Policy, key: str, cost: int, charge: bool, report: bool
    ) -> Decision:
        if self._storage_resting():
            return self._without_storage(policy)
        try:
            async with deadline(self._timeout):
                exceeded = await self._ask(policy, key, cost, charge)
        except _STORAGE_ERRORS as exc:
            return self._without_storage(policy, exc)
        self._storage_answered()
        self._counted(policy, exceeded is None, charge)
        quotas = await self.usage(policy, key, exceeded=exceeded) if report else None
        return Decision(exceeded is None, exceeded, quotas=quotas)

    async def _ask(self, policy: Policy, key: str, cost: int, charge: bool) -> int | None:
        """The index of the limit that refuses, if one does, having charged all or none."""
        strategy = self._strategy(policy)
        items = self._limits_items(policy)
        name = policy.name
        if charge and len(items) == 1 and policy.strategy != "fixed-window":
            return None if await strategy.hit(items[0], name, key, cost=cost) else 0
        for index, item in enumerate(items):
            if not await strategy.test(item, name, key, cost=cost):
                return index
        if charge:
            for index, item in enumerate(items):
                if not await strategy.hit(item, name, key, cost=cost):
                    return index  # another instance took the last slot meanwhile
        return None

    async def usage(
        self, policy: Policy, key: str, *, exceeded: int | None = None
    ) -> tuple[Quota, ...] | None:
        key = self.keys.look(policy, key)
        if self._storage_resting():
            return None
        strategy = self._strategy(policy)
        items = self._limits_items(policy)
        reads = [strategy.get_window_stats(item, policy.name, key) for item in items]
        try:
            async with deadline(self._timeout):
                # One limit (the usual case) needs no tasks; several are read concurrently.
                windows = [await reads[0]] if len(reads) == 1 else await asyncio.gather(*reads)
        except _STORAGE_ERRORS as exc:
            self._storage_failed(exc)
            return None
        self._storage_answered()
        now = self._clock()
        return tuple(
            Quota(
                name=f"{policy.name}-{item.window}s",
                limit=item.amount,
                window=item.window,
                remaining=0 if index == exceeded else max(0, window.remaining),
                reset_after=max(0, math.ceil(window.reset_time - now)),
            )
            for index, (item, window) in enumerate(zip(policy.items, windows, strict=True))
        )

    async def ping(self) -> None:
        if not await self.check():
            raise ConnectionError("the rate-limit storage does not answer")

    async def check(self) -> bool:
        """True if the storage answers (for readiness probes)."""
        try:
            async with deadline(self._timeout):
                return bool(await self._storage.check())
        except _STORAGE_ERRORS:
            return False

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.aclose()

    def _storage_resting(self) -> bool:
        now = self._monotonic()
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
        self._skip_storage_until = self._monotonic() + STORAGE_RETRY_SECONDS
        self._failing = True
        self._last_error = exc.__cause__ or exc

    def _maybe_log(self) -> None:
        now = self._monotonic()
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
