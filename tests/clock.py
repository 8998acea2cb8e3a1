"""A settable clock for tests that inject time instead of sleeping."""

from __future__ import annotations

import time
from collections.abc import Callable


class FakeClock:
    """Epoch seconds that move only when a test says so; starts at ``now`` or the real time."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def mid_minute_clock() -> Callable[[], float]:
    """The wall clock shifted to read 30 s into a minute now, for rate-limit windows.

    In-memory windows are aligned to the clock's minutes, and the sliding-window
    counter weighs the minute before by the time left in it, rounded down: a burst
    straddling a minute's end lets one more request through. No test's burst lasts
    anywhere near 30 s, so on this clock none straddles one.
    """
    shift = 30.0 - time.time() % 60

    def now() -> float:
        return time.time() + shift

    return now
