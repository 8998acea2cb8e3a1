"""The revocation decision, in pure functions every store (and any mirror) shares.

A store only fetches the entries that could apply to a token (:func:`candidate_keys`)
and hands them to :func:`decide`; so the SQLite, Redis, MongoDB and memory stores,
and an in-process :class:`Denylist` following a store's change feed, cannot disagree
about what is revoked.
"""

from __future__ import annotations

import functools
import secrets
import time
from collections.abc import Iterable
from dataclasses import replace

from backends.principal import Principal
from backends.revocation.base import Change, EntryKey, Revocation, RevokeRequest


def new_entry_id() -> str:
    return secrets.token_urlsafe(12)


def candidate_keys(principal: Principal) -> tuple[EntryKey, ...]:
    """Every key whose entry could cover ``principal``'s token."""
    return _candidate_keys(
        principal.issuer, principal.token_id, principal.subject, principal.client_id
    )


# Cached: a token asks for the same keys on every request it makes.
@functools.lru_cache(maxsize=4096)
def _candidate_keys(
    issuer: str, token_id: str | None, subject: str, client_id: str | None
) -> tuple[EntryKey, ...]:
    keys: list[EntryKey] = []
    if token_id is not None:
        keys.append(("jti", issuer, token_id))
    keys.append(("sub", None, subject))
    keys.append(("sub", issuer, subject))
    if client_id is not None:
        keys.append(("client", None, client_id))
        keys.append(("client", issuer, client_id))
    return tuple(keys)


def _applies(entry: Revocation, principal: Principal) -> bool:
    if entry.kind == "jti":
        return entry.issuer == principal.issuer and entry.value == principal.token_id
    if entry.issuer is not None and entry.issuer != principal.issuer:
        return False
    if entry.kind == "sub":
        return entry.value == principal.subject
    return entry.value == principal.client_id


def decide(entries: Iterable[Revocation], principal: Principal, now: float) -> Revocation | None:
    """The live entry that revokes ``principal``'s token, or None.

    A ``jti`` entry revokes its token outright. Subject and client entries combine:
    the effective cutoff is the latest of all that apply, and the token is revoked
    when its ``iat`` is not after the cutoff plus the clock leeway its verifier allowed
    (``principal.leeway``). A verifier accepts an ``iat`` up to the leeway ahead of its
    clock, so an issuer whose clock runs that much fast stamps a token made before the
    cutoff with a time after it: without the leeway here such a token would escape.
    The price: a token truly issued within the leeway after the cutoff is refused too
    (sign in again once the leeway has passed). ``iat`` has one-second resolution, so
    a token stamped with the cutoff's own second counts as issued before it. A token
    without ``iat`` cannot prove it was issued after the cutoff: any applicable subject
    or client entry revokes it. Expired entries are ignored whatever the store still
    holds (MongoDB's TTL monitor deletes late).
    """
    latest: Revocation | None = None
    for entry in entries:
        if entry.expires_at <= now or not _applies(entry, principal):
            continue
        if entry.kind == "jti":
            return entry
        if latest is None or _cutoff(entry) > _cutoff(latest):
            latest = entry
    if latest is None:
        return None
    issued_at = principal.issued_at
    if issued_at is None or issued_at <= _cutoff(latest) + principal.leeway:
        return latest
    return None


def _cutoff(entry: Revocation) -> float:
    # Subject and client entries always carry one; treat a missing one as "now and ever".
    return entry.cutoff if entry.cutoff is not None else float("inf")


def describe(entry: Revocation) -> str:
    """A client-safe sentence: never the operator's reason, which may be internal."""
    if entry.kind == "jti":
        return "The token has been revoked"
    whose = "its subject" if entry.kind == "sub" else "its client"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(_cutoff(entry)))
    return f"The token has been revoked: tokens of {whose} issued up to {stamp} are refused"


def outlives_denylist(principal: Principal, now: float, max_lifetime: float) -> bool:
    """True if the token could outlive the subject/client entries that cover it.

    Those entries expire ``max_lifetime`` after their cutoff; a token living longer
    would come back to life once its entry is gone.
    """
    if principal.expires_at - now > max_lifetime:
        return True
    return principal.issued_at is not None and principal.expires_at - principal.issued_at > (
        max_lifetime
    )


def make_entry(request: RevokeRequest, expires_at: float, now: float) -> Revocation:
    kind, issuer, value = request.key
    if not value:
        raise ValueError(f"a {kind} revocation needs a non-empty value")
    if kind == "jti" and not issuer:
        raise ValueError("a jti revocation needs its issuer")
    return Revocation(
        id=new_entry_id(),
        kind=kind,
        value=value,
        issuer=issuer,
        cutoff=request.cutoff,
        expires_at=expires_at,
        created_at=now,
        reason=request.reason,
        actor=request.actor,
    )


def merge(existing: Revocation | None, incoming: Revocation, now: float) -> Revocation:
    """The entry to store when ``incoming`` is revoked over the live entry ``existing``.

    Same key: keep the first revocation's id, reason, actor and time, and extend it to
    the later cutoff and the later expiry. An expired ``existing`` counts as absent.
    """
    if existing is None or existing.expires_at <= now:
        return incoming
    cutoff = existing.cutoff
    if incoming.cutoff is not None:
        cutoff = incoming.cutoff if cutoff is None else max(cutoff, incoming.cutoff)
    return replace(
        existing, cutoff=cutoff, expires_at=max(existing.expires_at, incoming.expires_at)
    )


class Denylist:
    """The latest state of every key, fed by writes or by a store's change feed.

    The memory store is one of these; a mirror that applies every
    :class:`~backends.revocation.base.Change` decides exactly as its store. Changes may
    arrive twice or out of order: the highest ``seq`` per key wins.
    """

    def __init__(self) -> None:
        self._states: dict[EntryKey, Change] = {}
        self.cursor = 0

    def apply(self, change: Change) -> None:
        key = change.entry.key
        known = self._states.get(key)
        if known is None or change.seq > known.seq:
            self._states[key] = change
        self.cursor = max(self.cursor, change.seq)

    def state(self, key: EntryKey) -> Change | None:
        return self._states.get(key)

    def states(self) -> Iterable[Change]:
        return self._states.values()

    def live(self, key: EntryKey, now: float) -> Revocation | None:
        change = self._states.get(key)
        if change is None or change.removed or change.entry.expires_at <= now:
            return None
        return change.entry

    def decide(self, principal: Principal, now: float) -> Revocation | None:
        found = (self.live(key, now) for key in candidate_keys(principal))
        return decide((e for e in found if e is not None), principal, now)

    def purge(self, now: float) -> int:
        """Forget expired entries and tombstones (no token they cover is still valid)."""
        gone = [k for k, c in self._states.items() if c.entry.expires_at <= now]
        for key in gone:
            del self._states[key]
        return len(gone)
