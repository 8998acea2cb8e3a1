"""Remembering proof ids so each proof is accepted once (RFC 9449 §11.1).

A cache entry is keyed by a hash of (proof key thumbprint, ``jti``): ``jti`` is
the client's choice, so two clients cannot collide and no entry's size depends on
what a client sends. It lives as long as the proof would still be accepted.

The in-memory cache serves one process. Its memory is bounded: entries sit in two
generations of ``window`` seconds each (a jti stays at least ``window``, at most
twice that), and at ``max_entries`` it refuses new proofs with
:class:`BackendUnavailable` (503 + Retry-After) rather than forget ids whose proofs
are still acceptable: evicting one would let its proof be replayed. Only proofs
that passed every other check, with a token they were bound to, should reach it,
so filling it takes that many genuine proofs.
"""

from __future__ import annotations

import hashlib
import math
from typing import Protocol

from backends.errors import BackendUnavailable

DEFAULT_MAX_ENTRIES = 1_000_000


def replay_key(jkt: str, jti: str) -> bytes:
    """128 bits of SHA-256 over both: fixed size, and collisions are out of reach."""
    return hashlib.sha256(f"{jkt}\x00{jti}".encode()).digest()[:16]


class ReplayCache(Protocol):
    async def first_use(self, jkt: str, jti: str, *, expires_at: float, now: float) -> bool:
        """Record the proof; False if it was recorded before and has not expired.

        :raises BackendUnavailable: the cache cannot tell (full, or unreachable).
        """
        ...

    async def aclose(self) -> None:
        """Release the connections the cache holds."""
        ...


class MemoryReplayCache:
    """One process's proof ids, in two rotating generations (see the module)."""

    def __init__(self, window: float, *, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if window <= 0 or max_entries < 1:
            raise ValueError("window and max_entries must be positive")
        self.window = window
        self.max_entries = max_entries
        self._generation = -math.inf
        self._current: set[bytes] = set()
        self._previous: set[bytes] = set()

    def __len__(self) -> int:
        return len(self._current) + len(self._previous)

    def _rotate(self, now: float) -> None:
        generation = math.floor(now / self.window)
        if generation <= self._generation:
            return  # also when the clock stepped back: nothing is forgotten early
        if generation == self._generation + 1:
            self._previous = self._current
        else:
            self._previous = set()
        self._current = set()
        self._generation = generation

    async def first_use(self, jkt: str, jti: str, *, expires_at: float, now: float) -> bool:
        if expires_at - now > self.window:
            raise ValueError("a proof outlives the replay window the cache was made for")
        self._rotate(now)
        key = replay_key(jkt, jti)
        if key in self._current or key in self._previous:
            return False
        if len(self) >= self.max_entries:
            retry_after = math.ceil((self._generation + 1) * self.window - now)
            raise BackendUnavailable(
                "Too many recent DPoP proofs to check this one for replay",
                retry_after=max(1, retry_after),
            )
        self._current.add(key)
        return True

    async def aclose(self) -> None:
        """Nothing to release: the proof ids live in this process."""
