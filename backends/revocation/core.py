"""What every store shares: entry construction, lifetimes and the decision path.

A store implements only its storage: writing one merged entry with its audit record
(:meth:`StoreBase._write`), writing back what a follower held (:meth:`StoreBase._restore`)
and fetching entries by key (:meth:`StoreBase._fetch`).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

from backends.principal import Principal
from backends.revocation.base import (
    Change,
    EntryKey,
    Revocation,
    RevocationStore,
    RevokeRequest,
)
from backends.revocation.policy import candidate_keys, decide, describe, make_entry

DEFAULT_LEEWAY = 30
DEFAULT_MAX_TOKEN_TTL = 86400
MAX_PAGE = 500


def parse_cursor(cursor: str | None) -> int | None:
    """A list/audit cursor handed out by a store: a positive number."""
    if cursor is None:
        return None
    if not cursor.isdigit() or len(cursor) > 19:
        raise ValueError("the cursor is not one this server handed out")
    return int(cursor)


def clamp_limit(limit: int) -> int:
    return max(1, min(int(limit), MAX_PAGE))


class StoreBase(RevocationStore, ABC):
    """Builds entries the same way in every store and decides with the shared policy.

    An entry must outlive every token it covers. A verifier accepts a token until
    ``exp + leeway`` (joserfc compares whole seconds, so a fractional ``exp`` lasts to
    the next one): one more second covers that and any verifier's ``<`` versus ``<=``.
    The Authenticator accepts no token living longer than ``max_token_ttl + leeway`` (see
    :func:`~backends.revocation.policy.outlives_denylist`). Hence:

    A subject or client entry covers tokens stamped up to ``leeway`` after its cutoff
    (a fast issuer clock, see :func:`~backends.revocation.policy.decide`). Hence:

    - a ``jti`` entry lives until ``exp + leeway + 1``;
    - a subject or client entry until
      ``cutoff + leeway + (max_token_ttl + leeway) + leeway + 1``.

    :param leeway: the verifiers' clock leeway, seconds.
    :param max_token_ttl: the longest access-token lifetime (``JOTGUARD_MAX_TOKEN_TTL``).
    """

    def __init__(
        self,
        *,
        leeway: float = DEFAULT_LEEWAY,
        max_token_ttl: float = DEFAULT_MAX_TOKEN_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.leeway = leeway
        self.max_token_ttl = max_token_ttl
        self.clock = clock

    @property
    def max_lifetime(self) -> float:
        """The longest lifetime a token may have and still be accepted."""
        return self.max_token_ttl + self.leeway

    def _outlive(self, exp: float) -> float:
        return exp + self.leeway + 1

    def _cover(self, cutoff: float) -> float:
        # The latest exp a covered token can have: stamped cutoff + leeway, living
        # max_lifetime.
        return self._outlive(cutoff + self.leeway + self.max_lifetime)

    async def revoke(self, request: RevokeRequest) -> Revocation:
        if request.cutoff is None:
            expires_at = self._outlive(request.at)
        else:
            expires_at = self._cover(request.cutoff)
        now = self.clock()
        return await self._write(make_entry(request, expires_at, now), now)

    async def is_revoked(self, principal: Principal) -> str | None:
        found = await self.find(principal)
        return describe(found) if found is not None else None

    async def find(self, principal: Principal) -> Revocation | None:
        """The entry that revokes ``principal``'s token, or None."""
        entries = await self._fetch(candidate_keys(principal))
        return decide(entries, principal, self.clock())

    async def restore(self, states: Sequence[Change], *, origin: str) -> int:
        """Write back states a follower held that this store lost; see
        :mod:`backends.revocation.writeback`. How many were written."""
        if not states:
            return 0
        return await self._restore(list(states), origin, self.clock())

    @abstractmethod
    async def _restore(self, states: list[Change], origin: str, now: float) -> int:
        """For each state, atomically per key: keep what :func:`writeback.restoration`
        makes of it over the stored state (tombstones included), with a new change
        number and its origin, audited as ``restore`` when it revokes; the count written."""

    @abstractmethod
    async def _write(self, incoming: Revocation, now: float) -> Revocation:
        """Merge ``incoming`` over the live entry of its key (:func:`policy.merge`), store
        it with a new change number and its audit record, atomically; the stored entry."""

    @abstractmethod
    async def _fetch(self, keys: Sequence[EntryKey]) -> list[Revocation]:
        """The non-removed entries stored under ``keys`` (expired ones may be included)."""
