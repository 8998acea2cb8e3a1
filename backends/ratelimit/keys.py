"""How many keys one rate-limit policy may count: a fixed bound, and where keys beyond it go.

Keys are partly the caller's choice (an address, a username), so the counters they
create are bounded, in process memory and in Redis alike: a policy counts at most
``max_keys`` keys at once. When that many are live, **no counter is evicted**.
Evicting one would reset it: an attacker who floods new keys would hand the
counter of the account or address being guessed (or its own) a fresh budget.
Instead every further key is counted in one overflow key the policy's newcomers
share, until live keys expire and make room; nobody's count is dropped before
its window has passed.

A key is live from its last charge until the policy's windows can no longer count
that charge (a sliding-window counter weighs the window before the current one,
so two windows; the other strategies one). Looking at a key charges nothing and
registers nothing. The bound is per process: with Redis, N processes create at
most N x ``max_keys`` live keys of a policy there.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from backends.ratelimit import Policy

OVERFLOW_KEY = "*overflow*"
"""The key newcomers share once a policy is full (built keys all start ``kind:``)."""


class _PolicyKeys:
    __slots__ = ("horizon", "last_charged")

    def __init__(self, horizon: float) -> None:
        self.horizon = horizon
        # Least recently charged first, so expired keys are always at the front.
        self.last_charged: OrderedDict[str, float] = OrderedDict()


class KeyBound:
    """Maps each key to itself, or to :data:`OVERFLOW_KEY` once its policy is full."""

    def __init__(self, max_keys: int, clock: Callable[[], float]) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.max_keys = max_keys
        self._clock = clock
        self._policies: dict[Policy, _PolicyKeys] = {}
        self.overflowed: dict[str, int] = {}
        """Per policy name: charges that found the policy full and went to the overflow key."""

    def charge(self, policy: Policy, key: str) -> str:
        """The key to charge for ``key``: registered as live now, unless the policy is full."""
        keys = self._keys(policy)
        now = self._clock()
        table = keys.last_charged
        if key in table:
            table.move_to_end(key)
            table[key] = now
            return key
        self._drop_expired(keys, now)
        if len(table) < self.max_keys:
            table[key] = now
            return key
        self.overflowed[policy.name] = self.overflowed.get(policy.name, 0) + 1
        return OVERFLOW_KEY

    def look(self, policy: Policy, key: str) -> str:
        """The key a charge would go to, registering nothing."""
        keys = self._keys(policy)
        table = keys.last_charged
        if key in table:
            return key
        self._drop_expired(keys, self._clock())
        return key if len(table) < self.max_keys else OVERFLOW_KEY

    def live(self, policy: Policy) -> int:
        """Keys of ``policy`` counted now."""
        keys = self._policies.get(policy)
        if keys is None:
            return 0
        self._drop_expired(keys, self._clock())
        return len(keys.last_charged)

    def _keys(self, policy: Policy) -> _PolicyKeys:
        keys = self._policies.get(policy)
        if keys is None:
            longest = max(item.window for item in policy.items)
            windows = 2 if policy.strategy == "sliding-window-counter" else 1
            keys = self._policies[policy] = _PolicyKeys(float(longest * windows))
        return keys

    @staticmethod
    def _drop_expired(keys: _PolicyKeys, now: float) -> None:
        table = keys.last_charged
        oldest_live = now - keys.horizon
        while table:
            key, charged = next(iter(table.items()))
            if charged >= oldest_live:
                return
            del table[key]
