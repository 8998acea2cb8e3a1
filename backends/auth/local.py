"""jotguard's own issuer: signs RFC 9068 access tokens and verifies them."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from joserfc import jwt

from backends.auth.compact import UnverifiedToken
from backends.auth.verifier import JWTVerifier
from backends.keys.keyring import Keyring
from backends.principal import Principal


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    jti: str
    expires_at: int
    claims: Mapping[str, Any]


class LocalIssuer:
    """Signs access tokens with the keyring's current key (as the schedule has it now)."""

    def __init__(self, keyring: Keyring, *, issuer: str, audience: str, ttl: int) -> None:
        self.keyring = keyring
        self.issuer = issuer
        self.audience = audience
        self.ttl = ttl

    def claims_for(
        self,
        subject: str,
        *,
        scopes: Iterable[str] = (),
        client_id: str | None = None,
        audience: str | None = None,
        ttl: int | None = None,
        extra: Mapping[str, Any] | None = None,
        jkt: str | None = None,
    ) -> dict[str, Any]:
        """The claims of an access token; ``jkt`` binds it to that DPoP key (RFC 9449 §6.1)."""
        now = int(time.time())
        claims: dict[str, Any] = dict(extra or {})
        if jkt is not None:
            claims["cnf"] = {"jkt": jkt}
        claims.update(
            iss=self.issuer,
            sub=subject,
            aud=audience or self.audience,
            iat=now,
            exp=now + (ttl if ttl is not None else self.ttl),
            # Hex, not base64url: an id that may start with "-" reads as a flag to
            # `jotguard revoke --jti ...` and to most other command lines.
            jti=secrets.token_hex(16),
            client_id=client_id or subject,
            scope=" ".join(sorted(set(scopes))),
        )
        return claims

    def sign(self, claims: dict[str, Any]) -> IssuedToken:
        """Sign ``claims`` now; CPU-bound for RSA, so servers call :meth:`sign_async`."""
        key = self.keyring.current
        header = {"alg": key.alg, "kid": key.kid, "typ": "at+jwt"}
        token = jwt.encode(header, claims, key.key, algorithms=[key.alg])
        return IssuedToken(token, claims["jti"], claims["exp"], claims)

    async def sign_async(self, claims: dict[str, Any]) -> IssuedToken:
        # A stat, so `jotguard keys rotate --now` beside the server moves signing at once.
        await self.keyring.reload_if_changed()
        return await asyncio.to_thread(self.sign, claims)


class LocalKeyBackend:
    """Verifies tokens signed by this issuer's keyring, held to RFC 9068 as it signs them."""

    def __init__(self, keyring: Keyring, *, issuer: str, audience: str, leeway: int) -> None:
        self.issuer = issuer
        self.verifier = JWTVerifier(
            issuer=issuer,
            audiences=[audience],
            keys=keyring,
            algorithms=[keyring.alg],
            leeway=leeway,
            rfc9068=True,
        )

    async def authenticate(self, token: UnverifiedToken) -> Principal:
        return await self.verifier.verify(token)

    def keys_usable_until(self) -> float | None:
        return None  # the keyring is on local disk: nothing goes stale
