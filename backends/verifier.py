"""Signature and claims verification shared by every JWT backend."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)

from backends.compact import UnverifiedToken
from backends.errors import InvalidToken
from backends.keys import KeySource
from backends.principal import Principal, scopes_from_claims

_CLAIM_REASONS = {"aud": "wrong_audience", "iss": "wrong_issuer", "exp": "expired"}


class JWTVerifier:
    """Verifies tokens of one issuer for one audience against one KeySource.

    ``require_jti=False`` is for issuers whose access tokens carry no ``jti``
    (Auth0): revocation then relies on subject and client cutoffs.
    """

    def __init__(
        self,
        *,
        issuer: str,
        audiences: Collection[str],
        keys: KeySource,
        algorithms: Collection[str],
        leeway: int = 30,
        clock: Callable[[], float] = time.time,
        require_jti: bool = True,
    ) -> None:
        self.issuer = issuer
        self.audiences = tuple(audiences)
        self.keys = keys
        self.algorithms = frozenset(algorithms)
        self.leeway = leeway
        self.clock = clock
        self.require_jti = require_jti

    async def verify(self, token: UnverifiedToken) -> Principal:
        if token.alg not in self.algorithms:
            raise InvalidToken("The token algorithm is not accepted", reason="invalid_signature")
        key = await self.keys.get_key(token.kid, token.alg)
        if key.alg != token.alg:
            raise InvalidToken(
                "The token algorithm does not match its key", reason="invalid_signature"
            )
        try:
            jws.deserialize_compact(token.raw, key.key, algorithms=[key.alg])
        except BadSignatureError:
            raise InvalidToken(
                "The token signature is invalid", reason="invalid_signature"
            ) from None
        except (JoseError, ValueError):
            raise InvalidToken("The token could not be verified", reason="malformed") from None
        return self._principal(token.claims)

    def _principal(self, claims: dict[str, Any]) -> Principal:
        self._validate_claims(claims)
        client_id = claims.get("client_id", claims.get("azp"))
        iat = claims.get("iat")
        return Principal(
            subject=claims["sub"],
            issuer=claims["iss"],
            token_id=claims.get("jti"),
            expires_at=int(claims["exp"]),
            issued_at=int(iat) if isinstance(iat, (int, float)) else None,
            client_id=client_id if isinstance(client_id, str) else None,
            scopes=scopes_from_claims(claims),
            claims=claims,
        )

    def _validate_claims(self, claims: dict[str, Any]) -> None:
        registry = jwt.JWTClaimsRegistry(
            now=int(self.clock()),
            leeway=self.leeway,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "values": list(self.audiences)},
            exp={"essential": True},
            sub={"essential": True},
            jti={"essential": self.require_jti},
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise InvalidToken("The token has expired", reason="expired") from None
        except (InvalidClaimError, MissingClaimError) as exc:
            claim = getattr(exc, "claim", "")
            reason = _CLAIM_REASONS.get(claim, "invalid_claims")
            raise InvalidToken(f"The token claim '{claim}' is invalid", reason=reason) from None
        # RFC 7519 §4.1.4: valid only *before* exp. Checked here too so the boundary
        # does not move with the joserfc release installed.
        if claims["exp"] + self.leeway <= self.clock():
            raise InvalidToken("The token has expired", reason="expired")
        jti = claims.get("jti")
        if (jti is not None or self.require_jti) and (not isinstance(jti, str) or not jti):
            raise InvalidToken("The token claim 'jti' is invalid", reason="invalid_claims")
