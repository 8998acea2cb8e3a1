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

A store's change feed has an identity, its *epoch*, written when the feed starts: a
store that lost or replaced its data (a Redis without persistence restarted, an SQLite
file swapped, a MongoDB counter reset) shows a new epoch or a change counter below what
a follower has read, and the follower reloads it in full (see
:mod:`backends.revocation.writeback` for what is then written back).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from backends.principal import Principal

RevocationKind = Literal["jti", "sub", "client"]
AuditAction = Literal["revoke", "unrevoke", "restore"]

# (kind, issuer or None for every issuer, value): one entry per key.
EntryKey = tuple[RevocationKind, str | None, str]

# (feed epoch, change number there) of the state a follower wrote back; see writeback.
Origin = tuple[str, int]


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
class RevokeRequest:
    """What a ``revoke_*`` call asks for, as one value: a store acts on it, the mirror
    passes it through to its store."""

    key: EntryKey
    at: float
    """A ``jti`` entry: the token's ``exp``. A subject or client entry: its cutoff (the
    tokens issued up to then are revoked)."""
    reason: str | None = None
    actor: str | None = None

    @property
    def cutoff(self) -> float | None:
        return None if self.key[0] == "jti" else self.at


@dataclass(frozen=True, slots=True)
class Change:
    """One step of the change feed: the entry's state after change number ``seq``.

    ``removed`` marks a tombstone: the entry was un-revoked. An entry that simply
    expired produces no change; a follower expires it by its ``expires_at``.
    ``origin`` is set on a state a follower wrote back after the store lost it.
    """

    seq: int
    entry: Revocation
    removed: bool = False
    origin: Origin | None = None


@dataclass(frozen=True, slots=True)
class ChangeBatch:
    changes: list[Change]
    cursor: int
    """Pass back to :meth:`RevocationStore.changes` for what happened after this batch."""
    epoch: str
    """The feed's identity: a new one means the store's data was lost or replaced."""
    head: int
    """The store's change counter when read; below a follower's cursor, data was lost."""
    at_cursor: Change | None
    """The state the store holds numbered exactly the cursor asked for, if any: not the
    one the follower read there, and the store's history was rewritten under it (its
    counter set back, then past the cursor again)."""


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


def audit_of(
    action: AuditAction, entry: Revocation, now: float, actor: str | None, reason: str | None
) -> AuditRecord:
    """The audit record of ``action`` done to ``entry`` at ``now``."""
    return AuditRecord(now, action, entry.id, entry.kind, entry.value, entry.issuer, actor, reason)


class StoredRecord(Protocol):
    """A row or document read back by field name (``sqlite3.Row``, a MongoDB document)."""

    def __getitem__(self, name: str, /) -> Any: ...


# The SQLite and MongoDB stores keep "no issuer" as "" (a key part cannot be NULL there).


def entry_from(record: StoredRecord) -> Revocation:
    """The entry a SQLite row or MongoDB document stores."""
    return Revocation(
        id=record["id"],
        kind=record["kind"],
        value=record["value"],
        issuer=record["issuer"] or None,
        cutoff=record["cutoff"],
        expires_at=record["expires_at"],
        created_at=record["created_at"],
        reason=record["reason"],
        actor=record["actor"],
    )


def audit_record_from(record: StoredRecord) -> AuditRecord:
    """The audit record a SQLite row or MongoDB document stores."""
    return AuditRecord(
        record["at"],
        record["action"],
        record["entry_id"],
        record["kind"],
        record["value"],
        record["issuer"] or None,
        record["actor"],
        record["reason"],
    )


@dataclass(frozen=True, slots=True)
class AuditPage:
    records: list[AuditRecord]
    next_cursor: str | None


class RevocationStore(Protocol):
    """Every method that touches the store raises ``BackendUnavailable`` when it cannot
    answer; a write returns only once the store has made it durable, and writes its
    audit record in the same step.

    The stores and the mirror subclass it, and so share its ``revoke_*`` methods."""

    durable: bool
    """Whether acknowledged revocations survive a restart of jotguard (memory: no)."""

    async def revoke(self, request: RevokeRequest) -> Revocation:
        """Revoke ``request.key``, extending the entry there if there is one; the stored
        entry. The three methods below are this, written once for every implementation
        that subclasses the protocol."""
        ...

    async def revoke_token(
        self,
        jti: str,
        *,
        issuer: str,
        expires_at: float,
        reason: str | None = None,
        actor: str | None = None,
    ) -> Revocation:
        """Revoke one token; ``expires_at`` is the token's ``exp``."""
        return await self.revoke(RevokeRequest(("jti", issuer, jti), expires_at, reason, actor))

    async def revoke_subject(
        self,
        subject: str,
        *,
        before: float,
        issuer: str | None = None,
        reason: str | None = None,
        actor: str | None = None,
    ) -> Revocation:
        """Revoke every token of ``subject`` issued up to ``before``."""
        return await self.revoke(RevokeRequest(("sub", issuer, subject), before, reason, actor))

    async def revoke_client(
        self,
        client_id: str,
        *,
        before: float,
        issuer: str | None = None,
        reason: str | None = None,
        actor: str | None = None,
    ) -> Revocation:
        """Revoke every token of ``client_id`` issued up to ``before``."""
        request = RevokeRequest(("client", issuer, client_id), before, reason, actor)
        return await self.revoke(request)

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

    async def restore(self, states: Sequence[Change], *, origin: str) -> int:
        """Write back entry states a follower held that this store no longer has.

        ``origin`` is the feed epoch they were read in and each state's ``seq`` its
        number there; :func:`backends.revocation.writeback.restoration` decides, per
        key, what is kept. Returns how many states were written.
        """
        ...

    async def audit_log(self, *, limit: int = 50, cursor: str | None = None) -> AuditPage:
        """Admin actions, newest first."""
        ...

    async def ping(self) -> None:
        """Return when the store answers; raise ``BackendUnavailable`` otherwise."""
        ...

    async def close(self) -> None: ...
