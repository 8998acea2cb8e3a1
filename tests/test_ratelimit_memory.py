"""The in-process counters behind ``memory://``: strategies, atomic charging, reports, expiry.

Time is a :class:`FakeClock` the tests move; it starts on a whole hour, so
minute and hour windows begin there.
"""

from __future__ import annotations

import pytest

from backends.ratelimit import Decision, Policy, Quota, RateLimiter
from backends.ratelimit_memory import MemoryCounters
from tests.clock import FakeClock

HOUR_START = 3600.0 * 500_000


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(HOUR_START)


@pytest.fixture
def counters(clock: FakeClock) -> MemoryCounters:
    return MemoryCounters(clock)


def hits(counters: MemoryCounters, policy: Policy, key: str, times: int, cost: int = 1) -> list:
    return [counters.decide(policy, key, cost, charge=True).allowed for _ in range(times)]


def remaining(counters: MemoryCounters, policy: Policy, key: str) -> list[int]:
    return [q.remaining for q in counters.usage(policy, key)]


# --- sliding-window counter ----------------------------------------------------------------


def test_sliding_window_weighs_the_previous_window_by_what_is_left_of_this_one(counters, clock):
    policy = Policy("p", "10/minute")
    assert hits(counters, policy, "k", 11) == [True] * 10 + [False]

    clock.now = HOUR_START + 60 + 15  # 3/4 of the new window to go: 10 * 0.75 = 7.5 counted
    assert remaining(counters, policy, "k") == [3]
    assert hits(counters, policy, "k", 4) == [True] * 3 + [False]

    clock.now = HOUR_START + 60 + 30  # 10 * 0.5 + 3 = 8
    assert hits(counters, policy, "k", 3) == [True] * 2 + [False]

    clock.now = HOUR_START + 180  # two windows on: nothing counts any more
    assert remaining(counters, policy, "k") == [10]


def test_sliding_window_charges_a_cost_only_if_it_fits_whole(counters, clock):
    policy = Policy("p", "10/minute")
    assert hits(counters, policy, "k", 3, cost=3) == [True] * 3
    refused = counters.decide(policy, "k", 2, charge=True)
    assert (refused.allowed, refused.exceeded) == (False, 0)
    assert hits(counters, policy, "k", 1, cost=1) == [True]


def test_sliding_window_reset_is_when_the_weight_drops_by_one_hit(counters, clock):
    policy = Policy("p", "10/minute")
    hits(counters, policy, "k", 10)
    assert counters.usage(policy, "k")[0].reset_after == 60  # the window's end
    clock.now = HOUR_START + 60 + 15
    # 10 previous hits lose their weight one per 6 seconds: 45 s to go, next in 3 s.
    assert counters.usage(policy, "k")[0].reset_after == 3


# --- moving window -------------------------------------------------------------------------


def test_moving_window_counts_the_hits_of_the_last_window(counters, clock):
    policy = Policy("p", "3/minute", "moving-window")
    for second in (0, 20, 40):
        clock.now = HOUR_START + second
        assert counters.decide(policy, "k", charge=True).allowed
    clock.now = HOUR_START + 50
    assert not counters.decide(policy, "k", charge=True).allowed
    assert counters.usage(policy, "k")[0] == Quota("p-60s", 3, 60, 0, 10)  # hit at 0 leaves
    clock.now = HOUR_START + 60
    assert not counters.decide(policy, "k", charge=True).allowed  # a minute old still counts
    clock.now = HOUR_START + 60.5
    assert counters.decide(policy, "k", charge=True).allowed
    assert remaining(counters, policy, "k") == [0]


def test_moving_window_cost_takes_as_many_slots(counters, clock):
    policy = Policy("p", "3/minute", "moving-window")
    assert counters.decide(policy, "k", 2, charge=True).allowed
    assert not counters.decide(policy, "k", 2, charge=True).allowed
    assert remaining(counters, policy, "k") == [1]
    clock.now = HOUR_START + 61
    assert counters.decide(policy, "k", 3, charge=True).allowed


def test_moving_window_without_hits_reports_a_whole_window(counters):
    policy = Policy("p", "3/minute", "moving-window")
    assert counters.usage(policy, "k") == (Quota("p-60s", 3, 60, 3, 60),)


# --- fixed window --------------------------------------------------------------------------


def test_fixed_window_counts_per_aligned_window(counters, clock):
    policy = Policy("p", "2/minute", "fixed-window")
    clock.now = HOUR_START + 45
    assert hits(counters, policy, "k", 3) == [True, True, False]
    assert counters.usage(policy, "k")[0].reset_after == 15  # the window ends at :60
    clock.now = HOUR_START + 60  # a new window, however recent the last hit
    assert hits(counters, policy, "k", 3) == [True, True, False]
    assert counters.usage(policy, "other")[0].reset_after == 0


# --- several limits, peeking ---------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["sliding-window-counter", "moving-window", "fixed-window"])
def test_several_limits_are_charged_all_or_none(counters, clock, strategy):
    policy = Policy("p", "2/minute;3/hour", strategy)
    assert hits(counters, policy, "k", 3) == [True, True, False]
    assert remaining(counters, policy, "k") == [0, 1]  # the refusal charged the hour nothing

    clock.now = HOUR_START + 120
    assert hits(counters, policy, "k", 1) == [True]
    refused = counters.decide(policy, "k", charge=True)
    assert (refused.allowed, refused.exceeded) == (False, 1)
    assert remaining(counters, policy, "k") == [1, 0]  # ...nor the minute


def test_peek_charges_nothing(counters):
    policy = Policy("p", "2/minute;5/hour", "moving-window")
    for _ in range(5):
        assert counters.decide(policy, "k", charge=False) == Decision(True)
    assert len(counters) == 0  # a look creates no entry
    hits(counters, policy, "k", 2)
    peeked = counters.decide(policy, "k", charge=False)
    assert (peeked.allowed, peeked.exceeded) == (False, 0)
    assert remaining(counters, policy, "k") == [0, 3]


def test_report_is_the_usage_after_the_decision(counters, clock):
    policy = Policy("p", "2/minute;3/hour", "fixed-window")
    clock.now = HOUR_START + 20
    allowed = counters.decide(policy, "k", charge=True, report=True)
    assert allowed.quotas == counters.usage(policy, "k")
    assert allowed.quotas == (Quota("p-60s", 2, 60, 1, 40), Quota("p-3600s", 3, 3600, 2, 3580))
    counters.decide(policy, "k", charge=True)
    refused = counters.decide(policy, "k", charge=True, report=True)
    assert refused.quotas == counters.usage(policy, "k", exceeded=0)
    assert [q.remaining for q in refused.quotas] == [0, 1]
    assert counters.decide(policy, "k", charge=True).quotas is None  # not asked for


# --- expiry --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "useless_after"),
    [("sliding-window-counter", 120), ("moving-window", 60), ("fixed-window", 60)],
)
def test_entries_are_dropped_once_their_windows_have_passed(
    counters, clock, strategy, useless_after
):
    policy = Policy("p", "5/minute", strategy)
    for n in range(100):
        counters.decide(policy, f"client-{n}", charge=True)
    assert len(counters) == 100
    clock.now = HOUR_START + useless_after - 1
    counters.decide(policy, "client-0", charge=False)
    assert len(counters) == 100  # still counting
    clock.now = HOUR_START + useless_after + 1
    counters.decide(policy, "someone-else", charge=False)
    assert len(counters) == 0


def test_a_charge_keeps_its_entry_while_older_ones_go(counters, clock):
    policy = Policy("p", "5/minute", "moving-window")
    counters.decide(policy, "a", charge=True)
    counters.decide(policy, "b", charge=True)
    clock.now = HOUR_START + 50
    counters.decide(policy, "a", charge=True)  # a is now the most recent
    clock.now = HOUR_START + 70
    assert remaining(counters, policy, "a") == [4]
    assert len(counters) == 1
    clock.now = HOUR_START + 111
    counters.decide(policy, "c", charge=False)
    assert len(counters) == 0


# --- through the limiter ---------------------------------------------------------------------


async def test_limiter_on_memory_reports_with_the_decision_and_counts(clock):
    limiter = RateLimiter("memory://", window_clock=clock)
    policy = Policy("p", "2/minute")
    first = await limiter.hit(policy, "k", report=True)
    assert first.quotas == (Quota("p-60s", 2, 60, 1, 60),)
    assert (await limiter.peek(policy, "k", report=True)).quotas == first.quotas
    await limiter.hit(policy, "k")
    refused = await limiter.hit(policy, "k", report=True)
    assert (refused.allowed, refused.exceeded, refused.storage_failed) == (False, 0, False)
    assert refused.quotas == (Quota("p-60s", 2, 60, 0, 60),)
    assert await limiter.usage(policy, "k", exceeded=0) == refused.quotas
    assert limiter.counts[("p", "allowed")] == 2
    assert limiter.counts[("p", "limited")] == 1
    assert limiter.in_process
    assert await limiter.check()
    await limiter.ping()
    await limiter.aclose()
