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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from backends.principal import Principal

RevocationKind = Literal["jti", "sub", "client"]


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


class RevocationStore(Protocol):
    """Every method that touches the store raises ``BackendUnavailable`` when it cannot
    answer; a write returns only once the store has made it durable."""

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

    async def close(self) -> None: ...
