"""How the benchmark summarises rounds: median and interquartile range of per-round ratios,
and whether the machine was quiet enough at the start for the figures to be trusted.

Kept free of timing and processes so it is unit-tested (``tests/test_bench_stats.py``).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

# A run that starts with the 1-minute load average above this is marked unreliable: on a
# 2-CPU machine, 0.5 already means another process is taking a good share of one CPU.
QUIET_LOAD = 0.5
# Fewer rounds than this and the interquartile range is a guess (the issue asks for >= 7).
MIN_ROUNDS = 7


@dataclass(frozen=True)
class Summary:
    """The median of some per-round values and their quartiles (inclusive method)."""

    median: float
    q1: float
    q3: float
    count: int

    def text(self, unit: str = "") -> str:
        """``1.52x (IQR 1.44-1.60, 7 rounds)``; a single round has no range."""
        head = f"{self.median:.2f}{unit}"
        if self.count == 1:
            return f"{head} (1 round)"
        return f"{head} (IQR {self.q1:.2f}-{self.q3:.2f}, {self.count} rounds)"


def summarise(values: Sequence[float]) -> Summary | None:
    """Median and quartiles of ``values``; None when there are none (every run void)."""
    if not values:
        return None
    if len(values) == 1:
        return Summary(values[0], values[0], values[0], 1)
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return Summary(median, q1, q3, len(values))


def describe(values: Sequence[float], unit: str = "") -> str:
    summary = summarise(values)
    return "n/a (every run void)" if summary is None else summary.text(unit)


def paired(top: Sequence[float | None], bottom: Sequence[float | None]) -> list[float]:
    """Ratios of runs made in the same round; a void run (None) drops its round."""
    return [t / b for t, b in zip(top, bottom, strict=True) if t is not None and b]


def unreliable_reasons(load_1min: float, rounds: int) -> list[str]:
    """Why this run's figures must not be quoted as final (empty when there is no reason)."""
    reasons = []
    if load_1min > QUIET_LOAD:
        reasons.append(
            f"the 1-minute load average was {load_1min:.2f} at the start (above {QUIET_LOAD}):"
            " other processes shared the CPUs"
        )
    if rounds < MIN_ROUNDS:
        plural = "round" if rounds == 1 else "rounds"
        reasons.append(f"{rounds} {plural} (at least {MIN_ROUNDS} for a median and IQR)")
    return reasons


def banner(reasons: Sequence[str]) -> list[str]:
    """The lines that say a run is unreliable, loud enough to be seen in a long output."""
    if not reasons:
        return []
    rule = "!" * 78
    return [
        rule,
        "UNRELIABLE RUN: do not quote these figures as final",
        *(f"  - {reason}" for reason in reasons),
        rule,
    ]
