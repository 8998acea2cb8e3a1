"""The lag benchmark assumes no poll interval: against a simulated instance B that learns
of changes at the next tick of a cycle of any period, revocations made by
:func:`bench.lag.run_trials` fall at random points of that cycle, so the measured lag
spreads over the whole period (mean about half of it), for slow and fast cycles alike."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from bench.lag import run_trials


class PollingInstance:
    """B on a simulated clock: it sees a revocation at its next poll after the write."""

    def __init__(self, period: float, offset: float = 0.3) -> None:
        self.period = period
        self.offset = offset * period
        self.now = 0.0

    def trial(self, n: int, wait: float) -> float:
        self.now += 0.0002 + wait  # B verifies the fresh token, then the wait
        revoked_at = self.now
        polls = math.floor((revoked_at - self.offset) / self.period) + 1
        seen_at = self.offset + polls * self.period
        self.now = seen_at + 0.0001  # the trial ends on the 401 just after that poll
        return (seen_at - revoked_at) * 1000


@pytest.mark.parametrize("period", [1.0, 0.05, 2.5])
def test_revocations_fall_all_over_the_cycle_whatever_its_period(period: float) -> None:
    instance = PollingInstance(period)

    lag = run_trials("sim", instance.trial, 400, random.Random(7))

    period_ms = period * 1000
    assert len(lag.lags_ms) == 400
    assert statistics.fmean(lag.lags_ms) == pytest.approx(period_ms / 2, rel=0.15)
    assert min(lag.lags_ms) < 0.1 * period_ms
    assert max(lag.lags_ms) > 0.9 * period_ms
    assert lag.window_ms == pytest.approx(period_ms, rel=0.1)


def test_immediate_propagation_costs_no_waiting() -> None:
    waits: list[float] = []

    def pubsub(n: int, wait: float) -> float:
        waits.append(wait)
        return 0.5  # ms: every instance is told at once

    lag = run_trials("pubsub", pubsub, 50, random.Random(1))

    assert max(waits) <= 0.0005
    assert lag.percentile(0.5) == 0.5


def test_a_revocation_that_never_arrives_is_counted_not_dropped() -> None:
    outcomes = iter([5.0] * 5 + [None, 5.0, None])
    lag = run_trials("lossy", lambda n, wait: next(outcomes), 3, random.Random(2))

    assert lag.lost == 2
    assert lag.lags_ms == [5.0]
    assert "2 NOT PROPAGATED" in lag.line()
