"""What rate limiting is asked and answers: policies, decisions, quotas.

Shared by the limiter (:mod:`backends.ratelimit`) and its in-process counters
(:mod:`backends.ratelimit_memory`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, get_args

from limits import RateLimitItem, parse_many

StrategyName = Literal["sliding-window-counter", "moving-window", "fixed-window"]

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
    items: tuple[RateLimitItem, ...] = field(init=False, repr=False, compare=False)

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
