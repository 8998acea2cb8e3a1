"""The authenticated caller, as every backend reports it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    issuer: str
    token_id: str | None
    expires_at: int
    issued_at: int | None = None
    client_id: str | None = None
    scopes: frozenset[str] = frozenset()
    claims: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    leeway: int = 0
    """Seconds of clock skew the verifier allowed the token: its ``iat`` may be this far
    ahead of the verifier's clock, so a subject or client cutoff covers tokens stamped
    up to this long after it (a fast clock's token cannot escape a revocation)."""
    jkt: str | None = None
    """The RFC 7638 thumbprint of the key the token is bound to (``cnf.jkt``, RFC 9449
    §6): such a token is accepted only with a DPoP proof signed by that key."""

    def has_scopes(self, required: Iterable[str]) -> bool:
        return self.scopes.issuperset(required)

    def has_any_scope(self, candidates: Iterable[str]) -> bool:
        return not self.scopes.isdisjoint(candidates)


def scopes_from_claims(claims: Mapping[str, Any]) -> frozenset[str]:
    """Scopes from the RFC 8693 ``scope`` string and Auth0's RBAC ``permissions`` array."""
    scopes: set[str] = set()
    scope = claims.get("scope")
    if isinstance(scope, str):
        scopes.update(scope.split())
    permissions = claims.get("permissions")
    if isinstance(permissions, list):
        scopes.update(p for p in permissions if isinstance(p, str) and p)
    return frozenset(scopes)
