"""The in-process counters behind ``memory://``: strategies, atomic charging, reports, expiry.

Everything goes through :class:`MemoryRateLimit`'s public methods on a
:class:`FakeClock` the tests move; it starts on a whole hour, so minute and hour
windows begin there. (That the numbers are ``limits``' own is checked in
``tests/test_ratelimit_backends.py``.)
"""

from __future__ import annotations

import pytest

from backends.ratelimit import Decision, Policy, Quota
from backends.ratelimit.memory import MemoryRateLimit
from tests.clock import FakeClock

HOUR_START = 3600.0 * 500_000


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(HOUR_START)


@pytest.fixture
def counters(clock: FakeClock) -> MemoryRateLimit:
    return MemoryRateLimit(clock=clock)


async def hits(
    counters: MemoryRateLimit, policy: Policy, key: str, times: int, cost: int = 1
) -> list[bool]:
    return [(await counters.hit(policy, key, cost=cost)).allowed for _ in range(times)]


async def remaining(counters: MemoryRateLimit, policy: Policy, key: str) -> list[int]:
    return [q.remaining for q in await counters.usage(policy, key)]


# --- sliding-window counter ----------------------------------------------------------------


async def test_sliding_window_weighs_the_previous_window_by_what_is_left_of_this_one(
    counters, clock
):
    policy = Policy("p", "10/minute")
    assert await hits(counters, policy, "k", 11) == [True] * 10 + [False]

    clock.now = HOUR_START + 60 + 15  # 3/4 of the new window to go: 10 * 0.75 = 7.5 counted
    assert await remaining(counters, policy, "k") == [3]
    assert await hits(counters, policy, "k", 4) == [True] * 3 + [False]

    clock.now = HOUR_START + 60 + 30  # 10 * 0.5 + 3 = 8
    assert await hits(counters, policy, "k", 3) == [True] * 2 + [False]

    clock.now = HOUR_START + 180  # two windows on: nothing counts any more
    assert await remaining(counters, policy, "k") == [10]


async def test_sliding_window_charges_a_cost_only_if_it_fits_whole(counters, clock):
    policy = Policy("p", "10/minute")
    assert await hits(counters, policy, "k", 3, cost=3) == [True] * 3
    refused = await counters.hit(policy, "k", cost=2)
    assert (refused.allowed, refused.exceeded) == (False, 0)
    assert await hits(counters, policy, "k", 1, cost=1) == [True]


async def test_sliding_window_reset_is_when_the_weight_drops_by_one_hit(counters, clock):
    policy = Policy("p", "10/minute")
    clock.now = HOUR_START + 15
    await hits(counters, policy, "k", 10)
    assert (await counters.usage(policy, "k"))[0].reset_after == 45  # the window's end
    clock.now = HOUR_START + 60 + 15
    # 10 previous hits lose their weight one per 6 seconds: 45 s to go, next in 3 s.
    assert (await counters.usage(policy, "k"))[0].reset_after == 3


# --- moving window -------------------------------------------------------------------------


async def test_moving_window_counts_the_hits_of_the_last_window(counters, clock):
    policy = Policy("p", "3/minute", "moving-window")
    for second in (0, 20, 40):
        clock.now = HOUR_START + second
        assert (await counters.hit(policy, "k")).allowed
    clock.now = HOUR_START + 50
    assert not (await counters.hit(policy, "k")).allowed
    assert (await counters.usage(policy, "k"))[0] == Quota("p-60s", 3, 60, 0, 10)  # hit at 0 leaves
    clock.now = HOUR_START + 60
    assert not (await counters.hit(policy, "k")).allowed  # a minute old still counts
    clock.now = HOUR_START + 60.5
    assert (await counters.hit(policy, "k")).allowed
    assert await remaining(counters, policy, "k") == [0]


async def test_moving_window_cost_takes_as_many_slots(counters, clock):
    policy = Policy("p", "3/minute", "moving-window")
    assert (await counters.hit(policy, "k", cost=2)).allowed
    assert not (await counters.hit(policy, "k", cost=2)).allowed
    assert await remaining(counters, policy, "k") == [1]
    clock.now = HOUR_START + 61
    assert (await counters.hit(policy, "k", cost=3)).allowed


async def test_moving_window_without_hits_reports_a_whole_window(counters):
    policy = Policy("p", "3/minute", "moving-window")
    assert await counters.usage(policy, "k") == (Quota("p-60s", 3, 60, 3, 60),)


# --- fixed window --------------------------------------------------------------------------


async def test_fixed_window_starts_at_a_keys_first_hit(counters, clock):
    policy = Policy("p", "2/minute", "fixed-window")
    clock.now = HOUR_START + 45
    assert await hits(counters, policy, "k", 3) == [True, True, False]
    assert (await counters.usage(policy, "k"))[0].reset_after == 60
    clock.now = HOUR_START + 60  # past the minute's end, not the window's
    assert await hits(counters, policy, "k", 1) == [False]
    assert (await counters.usage(policy, "k"))[0].reset_after == 45
    clock.now = HOUR_START + 105  # a new window, however recent the last hit
    assert await hits(counters, policy, "k", 3) == [True, True, False]
    assert (await counters.usage(policy, "other"))[0].reset_after == 0


# --- several limits, peeking ---------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["sliding-window-counter", "moving-window", "fixed-window"])
async def test_several_limits_are_charged_all_or_none(counters, clock, strategy):
    policy = Policy("p", "2/minute;3/hour", strategy)
    assert await hits(counters, policy, "k", 3) == [True, True, False]
    assert await remaining(counters, policy, "k") == [0, 1]  # the refusal charged the hour nothing

    clock.now = HOUR_START + 120
    assert await hits(counters, policy, "k", 1) == [True]
    refused = await counters.hit(policy, "k")
    assert (refused.allowed, refused.exceeded) == (False, 1)
    assert await remaining(counters, policy, "k") == [1, 0]  # ...nor the minute


async def test_peek_charges_nothing(counters):
    policy = Policy("p", "2/minute;5/hour", "moving-window")
    for _ in range(5):
        assert await counters.peek(policy, "k") == Decision(True)
    assert len(counters) == 0  # a look creates no entry
    await hits(counters, policy, "k", 2)
    peeked = await counters.peek(policy, "k")
    assert (peeked.allowed, peeked.exceeded) == (False, 0)
    assert await remaining(counters, policy, "k") == [0, 3]


async def test_report_is_the_usage_after_the_decision(counters, clock):
    policy = Policy("p", "2/minute;3/hour", "fixed-window")
    clock.now = HOUR_START + 20
    allowed = await counters.hit(policy, "k", report=True)
    assert allowed.quotas == await counters.usage(policy, "k")
    assert allowed.quotas == (Quota("p-60s", 2, 60, 1, 60), Quota("p-3600s", 3, 3600, 2, 3600))
    await counters.hit(policy, "k")
    refused = await counters.hit(policy, "k", report=True)
    assert refused.quotas == await counters.usage(policy, "k", exceeded=0)
    assert [q.remaining for q in refused.quotas] == [0, 1]
    assert (await counters.hit(policy, "k")).quotas is None  # not asked for


# --- expiry --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "useless_after"),
    [("sliding-window-counter", 120), ("moving-window", 60), ("fixed-window", 60)],
)
async def test_entries_are_dropped_once_their_windows_have_passed(
    counters, clock, strategy, useless_after
):
    policy = Policy("p", "5/minute", strategy)
    for n in range(100):
        await counters.hit(policy, f"client-{n}")
    assert len(counters) == 100
    clock.now = HOUR_START + useless_after - 1
    await counters.peek(policy, "client-0")
    assert len(counters) == 100  # still counting
    clock.now = HOUR_START + useless_after + 1
    await counters.peek(policy, "someone-else")
    assert len(counters) == 0


async def test_a_charge_keeps_its_entry_while_older_ones_go(counters, clock):
    policy = Policy("p", "5/minute", "moving-window")
    await counters.hit(policy, "a")
    await counters.hit(policy, "b")
    clock.now = HOUR_START + 50
    await counters.hit(policy, "a")  # a is now the most recent
    clock.now = HOUR_START + 70
    assert await remaining(counters, policy, "a") == [4]
    assert len(counters) == 1
    clock.now = HOUR_START + 111
    await counters.peek(policy, "c")
    assert len(counters) == 0


# --- counted decisions ---------------------------------------------------------------------


async def test_decisions_report_and_are_counted(clock):
    limiter = MemoryRateLimit(clock=clock)
    policy = Policy("p", "2/minute")
    clock.now = HOUR_START + 15
    first = await limiter.hit(policy, "k", report=True)
    assert first.quotas == (Quota("p-60s", 2, 60, 1, 45),)
    assert (await limiter.peek(policy, "k", report=True)).quotas == first.quotas
    await limiter.hit(policy, "k")
    refused = await limiter.hit(policy, "k", report=True)
    assert (refused.allowed, refused.exceeded, refused.storage_failed) == (False, 0, False)
    assert refused.quotas == (Quota("p-60s", 2, 60, 0, 45),)
    assert await limiter.usage(policy, "k", exceeded=0) == refused.quotas
    assert limiter.counts[("p", "allowed")] == 2
    assert limiter.counts[("p", "limited")] == 1
    await limiter.ping()
    await limiter.aclose()
