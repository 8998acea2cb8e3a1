"""Every rate-limit backend counts alike: memory:// against limits' own MemoryStorage, and Redis.

The in-process counters (:class:`MemoryRateLimit`) claim ``limits``' numbers. The
property tests here drive them and, as the reference, :class:`LimitsRateLimit` over
``limits.aio``'s ``MemoryStorage`` (the adapter Redis runs through) with the same
random operations on the same clock, and require the same decisions, quotas and
counts. ``limits`` reads ``time.time`` and sweeps old moving-window hits in a
background task; the reference gets the test's clock in place of the one and no
sweep (which changes nothing it counts, only what it reports for an empty window).

Two things the reference does not settle are left out:

- a moving-window hit exactly one window old: ``limits`` counts it when charging and
  not when testing, so the clock never lands exactly there;
- the reset time of a moving window with nothing counted: ``limits`` says a whole
  window, or 0 while its sweep has not yet run.
"""

from __future__ import annotations

import asyncio
import math
import types
from collections.abc import AsyncIterator
from contextlib import ExitStack
from unittest import mock

import limits.aio.storage.memory
import limits.aio.strategies
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from limits import parse_many
from limits.aio.storage import MemoryStorage
from limits.util import granularity_from_string

from backends.ratelimit import Decision, Policy, RateLimitBackend, open_rate_limit, parse_limits
from backends.ratelimit.limits import LimitsRateLimit
from backends.ratelimit.memory import MemoryRateLimit
from tests.clock import FakeClock
from tests.conftest import redis_url
from tests.redis_keys import own_prefix

STRATEGIES = ("sliding-window-counter", "moving-window", "fixed-window")
NOTATIONS = ("3/10 seconds", "2/10 seconds;5/minute", "4/second;6/5 seconds")
WINDOWS = {item.window for notation in NOTATIONS for item in parse_limits(notation)}
START = 1_700_000_000.0

operation = st.tuples(
    st.sampled_from(["hit", "hit", "hit", "peek", "usage"]),
    st.integers(0, len(NOTATIONS) - 1),
    st.sampled_from(["a", "b"]),
    st.sampled_from([1, 1, 2, 3]),  # cost
    st.booleans(),  # report
    st.one_of(st.just(0.0), st.integers(0, 15), st.floats(0, 15, allow_nan=False)),  # advance
)


async def noop(*args: object) -> None:
    return None


def limits_on(clock: FakeClock) -> ExitStack:
    """limits' memory storage and strategies reading ``clock``, and no background sweep."""
    stack = ExitStack()
    fake_time = types.SimpleNamespace(time=clock)
    stack.enter_context(mock.patch.object(limits.aio.storage.memory, "time", fake_time))
    stack.enter_context(mock.patch.object(limits.aio.strategies, "time", fake_time))
    stack.enter_context(mock.patch.object(MemoryStorage, "_MemoryStorage__schedule_expiry", noop))
    return stack


def off_a_boundary(now: float, hit_times: set[float]) -> float:
    """``now``, or the next float after it if a moving-window hit would be exactly one
    window old."""
    while any(now - window in hit_times for window in WINDOWS):
        now = math.nextafter(now, math.inf)
    return now


def comparable(policy: Policy, answer: Decision | tuple | None, cost: int) -> object:
    quotas = answer.quotas if isinstance(answer, Decision) else answer
    exceeded = answer.exceeded if isinstance(answer, Decision) else None
    if quotas is not None and policy.strategy == "moving-window":
        # An empty moving window's reset time is not settled by limits (see above): one
        # with room for every hit, or refusing only because the cost exceeds the limit.
        quotas = tuple(
            q._replace(reset_after=-1)
            if q.remaining == q.limit or (index == exceeded and cost > q.limit)
            else q
            for index, q in enumerate(quotas)
        )
    if isinstance(answer, Decision):
        return (answer.allowed, answer.exceeded, answer.storage_failed, quotas)
    return quotas


async def run(clock: FakeClock, strategy: str, operations: list[tuple]) -> None:
    policies = [Policy(f"p{n}", notation, strategy) for n, notation in enumerate(NOTATIONS)]
    native = MemoryRateLimit(clock=clock, max_keys=1000)
    reference = LimitsRateLimit(MemoryStorage(), clock=clock, max_keys=1000)
    hit_times: set[float] = set()
    for kind, index, key, cost, report, advance in operations:
        clock.now = off_a_boundary(clock.now + advance, hit_times)
        policy = policies[index]
        answers = []
        for limiter in (native, reference):
            if kind == "usage":
                answers.append(await limiter.usage(policy, key))
            else:
                ask = limiter.hit if kind == "hit" else limiter.peek
                answers.append(await ask(policy, key, cost=cost, report=report))
        assert comparable(policy, answers[0], cost) == comparable(policy, answers[1], cost), (
            kind,
            policy,
            key,
            cost,
            clock.now - START,
        )
        if strategy == "moving-window":
            hit_times.add(clock.now)
    assert native.counts == reference.counts


@pytest.mark.parametrize("strategy", STRATEGIES)
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=st.lists(operation, max_size=50))
def test_memory_counts_as_limits_memory_storage_does(strategy, operations):
    clock = FakeClock(START)
    with limits_on(clock):
        asyncio.run(run(clock, strategy, operations))


# --- the notation is limits' own ----------------------------------------------------------

NOTATION_PIECES = [*"0123456789 /;,|:\t", "per", "second", "minute", "hour", "day", "month"]
NOTATION_PIECES += ["year", "s", "S", "MINUTES", "K", "\u212a", "\u017f", "x"]
notation_text = st.lists(st.sampled_from(NOTATION_PIECES), max_size=20).map("".join)


def limits_reading(notation: str) -> tuple | str:
    """What limits makes of ``notation``, with jotguard's checks on top, or "refused"."""
    try:
        items = parse_many(notation.strip())
    except ValueError:
        return "refused"
    windows = [item.get_expiry() for item in items]
    if any(item.amount < 1 for item in items) or len(set(windows)) != len(windows):
        return "refused"
    ordered = sorted(items, key=lambda item: item.get_expiry())
    return tuple((i.amount, i.get_expiry(), i.GRANULARITY.name, i.multiples) for i in ordered)


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        notation_text,
        st.builds(
            lambda a, m, u, sep, b: f"{a}{sep}{m}{u}",
            st.integers(0, 120),
            st.sampled_from(["", "2 ", "0 ", " 10"]),
            st.sampled_from(["second", "minutes", "Hour", "days", "month", "YEARS", "week"]),
            st.sampled_from(["/", " per ", "per", " / "]),
            st.just(None),
        ),
    )
)
def test_the_notation_reads_as_limits_reads_it(notation):
    try:
        ours: tuple | str = tuple(parse_limits(notation))
    except ValueError:
        ours = "refused"
    assert ours == limits_reading(notation)
    if ours != "refused":
        # What the Redis backend hands limits: the items (and so the keys) limits parses.
        assert [
            granularity_from_string(item.granularity)(item.amount, item.multiples)
            for item in parse_limits(notation)
        ] == sorted(parse_many(notation.strip()), key=lambda item: item.get_expiry())


def test_the_notation_accepts_what_limits_accepts():
    assert [(i.amount, i.window) for i in parse_limits("10 per 2 minutes:, 5/second")] == [
        (5, 1),
        (10, 120),
    ]


# --- a refused request charges nothing, on every storage ----------------------------------


@pytest.fixture
async def redis_limiter() -> AsyncIterator[RateLimitBackend]:
    """A Redis backend under a key prefix of its own, deleted afterwards (never a flush)."""
    async with own_prefix() as prefix:
        limiter = open_rate_limit(redis_url(), key_prefix=prefix, timeout=5)
        yield limiter
        await limiter.aclose()


async def refused_requests_charge_nothing(limiter: RateLimitBackend, strategy: str) -> None:
    # The minute refuses: the hour is not charged for it.
    policy = Policy("minute-first", "2/minute;3/hour", strategy)
    assert [(await limiter.hit(policy, "k")).exceeded for _ in range(3)] == [None, None, 0]
    assert [q.remaining for q in await limiter.usage(policy, "k")] == [0, 1]
    # The hour refuses: the minute is not charged for it.
    policy = Policy("hour-first", "3/minute;2/hour", strategy)
    assert [(await limiter.hit(policy, "k")).exceeded for _ in range(3)] == [None, None, 1]
    refused = await limiter.hit(policy, "k", report=True)
    assert [q.remaining for q in refused.quotas] == [1, 0]
    # A cost that one limit cannot take charges the others nothing either.
    policy = Policy("costly", "5/minute;2/hour", strategy)
    assert (await limiter.hit(policy, "k", cost=3)).exceeded == 1
    assert [q.remaining for q in await limiter.usage(policy, "k")] == [5, 2]


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_refused_requests_charge_nothing_in_memory(strategy):
    # Mid-minute: a sliding window's minute must not end within the test.
    limiter = MemoryRateLimit(clock=FakeClock(START + 30))
    await refused_requests_charge_nothing(limiter, strategy)


@pytest.mark.redis
@pytest.mark.parametrize("strategy", ["moving-window", "fixed-window"])
async def test_refused_requests_charge_nothing_in_redis(redis_limiter, strategy):
    # (Redis counts on the real clock: the sliding window, whose weights move at every
    # minute's end, is left to the memory test; all three share the charging code.)
    await refused_requests_charge_nothing(redis_limiter, strategy)
