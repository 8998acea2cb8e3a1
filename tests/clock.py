"""A settable clock for tests that inject time instead of sleeping."""

from __future__ import annotations

import time


class FakeClock:
    """Epoch seconds that move only when a test says so; starts at ``now`` or the real time."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
