"""What a grant hands out: refresh-token values and records, the granted scopes, the response.

Refresh tokens are opaque random strings; only their SHA-256 is stored (they carry 256
bits of entropy, so a fast hash is enough: nothing to brute-force).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

from backends.auth.local import IssuedToken
from backends.issuance.base import RefreshToken, scope_string
from backends.issuance.errors import InvalidScope

REFRESH_TOKEN_BYTES = 32


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def narrow_scopes(requested: frozenset[str] | None, allowed: frozenset[str]) -> frozenset[str]:
    """The scopes to grant: all ``allowed`` when none were asked for, else exactly those.

    :raises InvalidScope: asked for one that is not allowed.
    """
    if requested is None:
        return allowed
    refused = requested - allowed
    if refused:
        raise InvalidScope(f"Scope not allowed for this grant: {scope_string(refused)}")
    return requested


@dataclass(frozen=True, slots=True)
class TokenGrant:
    access: IssuedToken
    scopes: frozenset[str]
    refresh_token: str | None = None

    @property
    def token_type(self) -> str:
        """``DPoP`` for an access token bound to a key (RFC 9449 §5), else ``Bearer``."""
        return "DPoP" if "cnf" in self.access.claims else "Bearer"

    def response(self) -> dict[str, Any]:
        """The RFC 6749 §5.1 response body."""
        body: dict[str, Any] = {
            "access_token": self.access.token,
            "token_type": self.token_type,
            "expires_in": max(0, self.access.expires_at - int(time.time())),
            "scope": scope_string(self.scopes),
        }
        if self.refresh_token is not None:
            body["refresh_token"] = self.refresh_token
        return body


def new_refresh_token(
    family_id: str,
    client_id: str,
    subject: str,
    scopes: frozenset[str],
    *,
    now: float,
    ttl: float,
    jkt: str | None = None,
) -> tuple[str, RefreshToken]:
    """A fresh refresh token and the record the store keeps of it (its hash, not it),
    bound to the DPoP key whose thumbprint is ``jkt``, if any."""
    plain = secrets.token_urlsafe(REFRESH_TOKEN_BYTES)
    record = RefreshToken(
        token_hash=hash_refresh_token(plain),
        family_id=family_id,
        client_id=client_id,
        subject=subject,
        scopes=scopes,
        issued_at=now,
        expires_at=now + ttl,
        jkt=jkt,
    )
    return plain, record
