"""What every rate-limit backend keeps beside its counters: bounded keys, decision counts, metrics.

:class:`CountedLimiter` is the base of each backend: it maps keys through the
policy's key bound (:mod:`backends.ratelimit.keys`), counts decisions per
(policy, outcome) for ``/metrics``, and warns at most once a minute per policy
when a policy is full.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Iterator

from backends.ratelimit import Policy
from backends.ratelimit.keys import OVERFLOW_KEY, KeyBound
from backends.telemetry import Sample

log = logging.getLogger("jotguard.ratelimit")

LOG_INTERVAL_SECONDS = 60.0


class CountedLimiter:
    """``counts[(policy_name, outcome)]``: ``allowed``, ``limited``, and decisions made
    without the storage (``failed_open`` / ``failed_closed``).

    ``clock`` is the wall clock keys live on; ``monotonic`` times the log intervals.
    """

    def __init__(
        self,
        *,
        max_keys: int,
        clock: Callable[[], float],
        monotonic: Callable[[], float],
    ) -> None:
        self.keys = KeyBound(max_keys, clock)
        self.counts: Counter[tuple[str, str]] = Counter()
        self._monotonic = monotonic
        self._overflow_logged: dict[str, float] = {}

    def _charged_key(self, policy: Policy, key: str) -> str:
        """The key a charge for ``key`` goes to, registered as live."""
        charged = self.keys.charge(policy, key)
        if charged == OVERFLOW_KEY:
            self._overflowed(policy)
        return charged

    def _counted(self, policy: Policy, allowed: bool, charge: bool) -> None:
        if not allowed:
            self.counts[(policy.name, "limited")] += 1
        elif charge:
            self.counts[(policy.name, "allowed")] += 1

    @property
    def storage_failures(self) -> int:
        """Decisions made without the storage, open or closed, since start."""
        return sum(n for (_, outcome), n in self.counts.items() if outcome.startswith("failed_"))

    def telemetry(self) -> Iterator[Sample]:
        failures: Counter[str] = Counter()
        for (policy, outcome), count in list(self.counts.items()):
            yield Sample(
                "ratelimit_decisions_total",
                "counter",
                "Rate-limit decisions: allowed, limited, failed_open, failed_closed",
                count,
                {"policy": policy, "decision": outcome},
            )
            if outcome.startswith("failed_"):
                failures[policy] += count
        for policy, count in failures.items():
            yield Sample(
                "ratelimit_storage_failures_total",
                "counter",
                "Decisions made without the rate-limit storage",
                count,
                {"policy": policy},
            )
        for policy, count in list(self.keys.overflowed.items()):
            yield Sample(
                "ratelimit_key_overflows_total",
                "counter",
                "Charges that found their policy at its key bound and shared the overflow key",
                count,
                {"policy": policy},
            )

    def _overflowed(self, policy: Policy) -> None:
        now = self._monotonic()
        if now - self._overflow_logged.get(policy.name, -math.inf) < LOG_INTERVAL_SECONDS:
            return
        self._overflow_logged[policy.name] = now
        log.warning(
            "rate-limit policy %s counts %d keys, its bound: new keys share one budget until"
            " counters expire (raise JOTGUARD_RATELIMIT_MAX_KEYS if this is not a flood)",
            policy.name,
            self.keys.max_keys,
        )
