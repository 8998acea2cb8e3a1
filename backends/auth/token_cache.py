"""A bounded cache of verified tokens: a token's signature and claims are checked once.

Keyed by the exact token string (a token with another encoding is another key, verified
on its own), it holds only tokens that passed verification, and never past their
``exp``: after that the verifier decides again, leeway included. Nor past the moment the
keys that verified them stop being usable (a remote key set past max-stale): then the
verifier decides too, and answers 503 for old and new tokens alike. It is not a
revocation cache: the revocation check runs on every request, cached or not.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from backends.principal import Principal


class VerifiedTokenCache:
    """Least recently used tokens are dropped first once ``max_size`` are held.

    The cached :class:`Principal` is shared by every request presenting the token:
    treat it (and its ``claims``) as read-only.
    """

    def __init__(self, max_size: int, *, clock: Callable[[], float] = time.time) -> None:
        if max_size < 1:
            raise ValueError("a token cache holds at least one token")
        self.max_size = max_size
        self.clock = clock
        # token -> (when to verify it again, its principal)
        self._entries: OrderedDict[str, tuple[float, Principal]] = OrderedDict()

    def get(self, token: str) -> Principal | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        if self.clock() >= entry[0]:
            del self._entries[token]
            return None
        self._entries.move_to_end(token)
        return entry[1]

    def put(self, token: str, principal: Principal, *, until: float | None = None) -> None:
        """Remember ``principal``, which ``token`` was just verified to carry, until its
        ``exp`` or ``until`` (when its keys stop being usable), whichever comes first."""
        deadline = principal.expires_at if until is None else min(principal.expires_at, until)
        if self.clock() >= deadline:
            return  # accepted within the leeway only: verify it again next time
        self._entries[token] = (deadline, principal)
        self._entries.move_to_end(token)
        while len(self._entries) > self.max_size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every token: the keys they were verified with may have changed."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
