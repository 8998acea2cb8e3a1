"""Rate limiting: what is asked (policies), what is answered (decisions, quotas), and who counts.

A :class:`Policy` names a set of limits in the ``limits`` notation
(``"10/minute;100/hour"``) and a strategy; a :class:`RateLimitBackend` counts hits
against a policy for an opaque key (the web layer decides whom a key names). Every
backend charges a policy the same way: **all of its limits or none**, so a refused
request charges nothing.

One backend per storage scheme, chosen by :func:`open_rate_limit` from a URL:

- ``memory://``: :class:`backends.ratelimit.memory.MemoryRateLimit`, counted in this
  process, synchronously, with ``limits``' strategies to the same numbers;
- ``redis://`` / ``rediss://``: :class:`backends.ratelimit.limits.LimitsRateLimit`
  over ``limits``' Redis storage, shared by every instance.

Nothing here imports ``limits`` or ``redis``: a backend imports its drivers when it
is built. Both bound the keys a policy counts (:mod:`backends.ratelimit.keys`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol, get_args
from urllib.parse import urlsplit

from backends.storage.urls import check_store_url
from backends.telemetry import Sample

StrategyName = Literal["sliding-window-counter", "moving-window", "fixed-window"]

DEFAULT_MAX_KEYS = 100_000

_POLICY_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")

# The limits notation, as limits 5.x parses it (limits.util): "10/minute", "10 per 2
# hours", joined by , ; or |. Its whole-string pattern lets a ":" end any limit but the
# last ("(:?" in the original); kept, so every value limits accepts is accepted here.
_ONE = r"\s*([0-9]+)\s*(?:/|\s*per\s*)\s*([0-9]+)?\s*([a-z]+)\s*"
_NOTATION = re.compile(rf"{_ONE}(?::?[,;|]{_ONE})*", re.IGNORECASE)
_ONE_LIMIT = re.compile(_ONE, re.IGNORECASE)
_SEPARATOR = re.compile(r"[,;|]")
# limits' granularities: seconds in one, by name (a plural "s" is accepted too).
GRANULARITIES = {
    "second": 1,
    "minute": 60,
    "hour": 3600,
    "day": 86400,
    "month": 86400 * 30,
    "year": 86400 * 30 * 12,
}
_UNITS = {**{name: name for name in GRANULARITIES}, **{f"{name}s": name for name in GRANULARITIES}}


class Limit(NamedTuple):
    """One limit of a policy: ``amount`` hits per ``multiples`` ``granularity``."""

    amount: int
    window: int
    """Its length in seconds."""
    granularity: str
    multiples: int


def _parse_notation(notation: str) -> list[Limit]:
    if not _NOTATION.fullmatch(notation):
        raise ValueError(notation)
    limits = []
    for part in _SEPARATOR.split(notation):
        match = _ONE_LIMIT.match(part)
        assert match is not None  # the whole notation matched
        amount, multiples, unit = match.groups()
        granularity = _UNITS.get(unit.lower())
        if granularity is None:
            raise ValueError(unit)
        # As limits reads it: an absent or zero multiple is one.
        count = int(multiples) if multiples and int(multiples) else 1
        limits.append(Limit(int(amount), GRANULARITIES[granularity] * count, granularity, count))
    return limits


def parse_limits(notation: str) -> tuple[Limit, ...]:
    """``"10/minute;100/hour"`` as limits, shortest window first.

    :raises ValueError: bad notation, a zero amount or two limits on one window.
    """
    try:
        items = _parse_notation(notation.strip())
    except ValueError:
        raise ValueError("must be limits such as 10/minute;100/hour") from None
    if any(item.amount < 1 for item in items):
        raise ValueError("every limit must allow at least one request")
    windows = [item.window for item in items]
    if len(set(windows)) != len(windows):
        raise ValueError("two limits share one window")
    return tuple(sorted(items, key=lambda item: item.window))


@dataclass(frozen=True)
class Policy:
    """A named set of limits, e.g. ``Policy("search", "30/minute")``.

    ``strategy`` is one of ``limits``' strategies: the sliding-window counter
    (cheap, nearly exact) by default, the moving window where exactness matters
    (token issuance and failure budgets).

    :raises ValueError: a bad name, notation or strategy.
    """

    name: str
    limits: str
    strategy: StrategyName = "sliding-window-counter"
    items: tuple[Limit, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _POLICY_NAME.fullmatch(self.name):
            raise ValueError(f"policy name {self.name!r}: use 1-64 of A-Z a-z 0-9 _ . -")
        if self.strategy not in get_args(StrategyName):
            raise ValueError(f"policy {self.name}: unknown strategy {self.strategy!r}")
        object.__setattr__(self, "items", parse_limits(self.limits))


class Quota(NamedTuple):
    """Where one limit of a policy stands for one key (what the RateLimit headers say).

    A named tuple: one is made per limit on every counted request.
    """

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
    quotas: tuple[Quota, ...] | None = None
    """Asked for with ``report=True`` and the storage answered: the quotas after this decision."""


class RateLimitBackend(Protocol):
    """Counts hits per (policy, key). Build it in the event loop that uses it; ``aclose`` it."""

    async def hit(
        self, policy: Policy, key: str, *, cost: int = 1, report: bool = False
    ) -> Decision:
        """Charge ``cost`` to every limit of ``policy`` for ``key`` if each has room, else
        to none. ``report``: the decision carries the quotas, unless the storage failed."""
        ...

    async def peek(
        self, policy: Policy, key: str, *, cost: int = 1, report: bool = False
    ) -> Decision:
        """Would ``cost`` more hits fit under every limit? Charges nothing."""
        ...

    async def usage(
        self, policy: Policy, key: str, *, exceeded: int | None = None
    ) -> tuple[Quota, ...] | None:
        """Where each limit stands for ``key``; None if the storage cannot say.

        ``exceeded`` (from a refusing :class:`Decision`) reports that limit as spent.
        """
        ...

    async def ping(self) -> None:
        """Readiness: raises unless the storage answers."""
        ...

    async def aclose(self) -> None: ...

    def telemetry(self) -> Iterator[Sample]:
        """Decisions per policy and outcome, storage failures, key overflows."""
        ...


def check_storage_uri(uri: str) -> str:
    """``memory://`` or a Redis URL, stripped: the rate-limit schemes of the one table of
    store URLs (:data:`backends.storage.urls.STORE_SCHEMES`).

    :raises ValueError: anything else.
    """
    return check_store_url("ratelimit", uri)


def open_rate_limit(
    uri: str,
    *,
    key_prefix: str = "jotguard:ratelimit",
    timeout: float = 0.5,
    fail_closed: bool = False,
    max_keys: int = DEFAULT_MAX_KEYS,
    clock: Callable[[], float] = time.time,
) -> RateLimitBackend:
    """The backend for a storage URL (see :func:`check_storage_uri`); each backend
    imports its drivers only when built.

    ``key_prefix``, ``timeout`` and ``fail_closed`` concern a storage across the
    network (memory cannot fail). ``clock`` is the wall clock in-process windows are
    counted on (tests pass one they move); Redis counts on ``limits``' own, ``time.time``.
    """
    value = check_storage_uri(uri)
    if urlsplit(value).scheme == "memory":
        from backends.ratelimit.memory import MemoryRateLimit

        return MemoryRateLimit(max_keys=max_keys, clock=clock)
    from backends.ratelimit.limits import LimitsRateLimit

    return LimitsRateLimit.redis(
        value, key_prefix=key_prefix, timeout=timeout, fail_closed=fail_closed, max_keys=max_keys
    )
