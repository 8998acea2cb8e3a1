"""The RevocationStore protocol and the entry every store keeps.

Three kinds of entry:

- ``jti``: one token, keyed by its issuer and token id (never a hash of the raw
  token: the same token has several encodings). Lives until the token's ``exp``
  plus leeway.
- ``sub``: every token of a subject issued before ``cutoff`` ("log out everywhere").
- ``client``: every token of a client issued before ``cutoff``.

Subject and client entries live until ``cutoff`` plus the longest access-token
lifetime: after that no token they cover can still be valid. Several entries may
apply to one token; the effective cutoff is the latest of them.

A subject or client entry with ``issuer=None`` covers that subject or client at
every trusted issuer (the safe default: a name shared by two issuers is revoked at
both); with an issuer it covers only that issuer's tokens. A ``jti`` entry always
names its issuer.

There is at most one entry per key ``(kind, issuer, value)``: revoking the same key
again keeps the entry's id, reason and actor and extends it (the later cutoff, the
later expiry). The decision itself lives in :mod:`backends.revocation.policy`, shared
by every store and by any in-process mirror of the change feed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from backends.principal import Principal

RevocationKind = Literal["jti", "sub", "client"]
AuditAction = Literal["revoke", "unrevoke"]

# (kind, issuer or None for every issuer, value): one entry per key.
EntryKey = tuple[RevocationKind, str | None, str]


@dataclass(frozen=True, slots=True)
class Revocation:
    id: str
    kind: RevocationKind
    value: str
    issuer: str | None
    cutoff: float | None
    expires_at: float
    created_at: float
    reason: str | None = None
    actor: str | None = None

    @property
    def key(self) -> EntryKey:
        return (self.kind, self.issuer, self.value)


@dataclass(frozen=True, slots=True)
class Change:
    """One step of the change feed: the entry's state after change number ``seq``.

    ``removed`` marks a tombstone: the entry was un-revoked. An entry that simply
    expired produces no change; a follower expires it by its ``expires_at``.
    """

    seq: int
    entry: Revocation
    removed: bool = False


@dataclass(frozen=True, slots=True)
class ChangeBatch:
    changes: list[Change]
    cursor: int
    """Pass back to :meth:`RevocationStore.changes` for what happened after this batch."""


@dataclass(frozen=True, slots=True)
class Page:
    entries: list[Revocation]
    next_cursor: str | None
    """Opaque; None on the last page."""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    at: float
    action: AuditAction
    entry_id: str
    kind: RevocationKind
    value: str
    issuer: str | None
    actor: str | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class AuditPage:
    records: list[AuditRecord]
    next_cursor: str | None


class RevocationStore(Protocol):
    """Every method that touches the store raises ``BackendUnavailable`` when it cannot
    answer; a write returns only once the store has made it durable, and writes its
    audit record in the same step."""

    durable: bool
    """Whether acknowledged revocations survive a restart of jotguard (memory: no)."""

    async def revoke_token(
        self,
        jti: str,
        *,
        issuer: str,
        expires_at: float,
        reason: str | None = None,
        actor: str | None = None,
    ) -> Revocation: ...

    async def revoke_subject(
        self,
        subject: str,
        *,
        before: float,
        issuer: str | None = None,
        reason: str | None = None,
        actor: str | None = None,
    ) -> Revocation: ...

    async def revoke_client(
        self,
        client_id: str,
        *,
        before: float,
        issuer: str | None = None,
        reason: str | None = None,
        actor: str | None = None,
    ) -> Revocation: ...

    async def is_revoked(self, principal: Principal) -> str | None:
        """Why ``principal``'s token is revoked (a client-safe sentence), or None."""
        ...

    async def unrevoke(
        self, entry_id: str, *, reason: str | None = None, actor: str | None = None
    ) -> Revocation | None:
        """Remove a live entry (undo a mistake); the removed entry, or None if unknown."""
        ...

    async def list_entries(self, *, limit: int = 50, cursor: str | None = None) -> Page:
        """Live entries, most recently revoked (or extended) first."""
        ...

    async def changes(self, cursor: int = 0, *, limit: int = 500) -> ChangeBatch:
        """Entry states changed after ``cursor``, oldest first, tombstones included.

        Replaying every batch from cursor 0 into a
        :class:`~backends.revocation.policy.Denylist` reproduces the store's decisions.
        """
        ...

    async def audit_log(self, *, limit: int = 50, cursor: str | None = None) -> AuditPage:
        """Admin actions, newest first."""
        ...

    async def ping(self) -> None:
        """Return when the store answers; raise ``BackendUnavailable`` otherwise."""
        ...

    async def close(self) -> None: ...
