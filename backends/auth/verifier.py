"""Signature and claims verification shared by every JWT backend."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)

from backends.auth.compact import UnverifiedToken
from backends.errors import InvalidToken
from backends.keys import KeySource
from backends.principal import Principal, scopes_from_claims

_CLAIM_REASONS = {"aud": "wrong_audience", "iss": "wrong_issuer", "exp": "expired"}
# RFC 9068 §4: an access token's typ is "at+jwt"; RFC 7515 §4.1.9 lets "application/"
# be left out, and media types compare without regard to case.
_ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
_NUMERIC_DATES = ("exp", "nbf", "iat")
_STRING_CLAIMS = ("client_id", "azp")
_MAX_JKT_CHARS = 128


def is_numeric_date(value: object) -> bool:
    """RFC 7519 §2: a JSON number of seconds; not a boolean, not NaN, not infinite."""
    if type(value) is int:  # bool is a subclass of int: type(), not isinstance()
        return True
    return type(value) is float and math.isfinite(value)


def _claim_error(claim: str, problem: str = "is invalid") -> InvalidToken:
    return InvalidToken(f"The token claim '{claim}' {problem}", reason="invalid_claims")


def confirmation_jkt(claims: Mapping[str, Any]) -> str | None:
    """The DPoP key thumbprint the token is bound to (``cnf.jkt``, RFC 9449 §6.1), or None
    for a token without ``cnf``.

    :raises InvalidToken: a ``cnf`` that is not an object with a thumbprint in ``jkt``,
        including one that binds the token some other way (``x5t#S256``, RFC 8705):
        such a token must not pass as a bearer token, and jotguard cannot check it.
    """
    if "cnf" not in claims:
        return None
    cnf = claims["cnf"]
    if not isinstance(cnf, dict):
        raise _claim_error("cnf", "is not an object")
    if "jkt" not in cnf:
        raise _claim_error("cnf", "binds the token by a method other than DPoP (cnf.jkt)")
    jkt = cnf["jkt"]
    # A SHA-256 thumbprint is 43 base64url characters; room is left for longer hashes.
    if not isinstance(jkt, str) or not 0 < len(jkt) <= _MAX_JKT_CHARS or not jkt.isascii():
        raise _claim_error("cnf", "has a 'jkt' that is not a key thumbprint")
    return jkt


class JWTVerifier:
    """Verifies tokens of one issuer for one audience against one KeySource.

    ``require_jti=False`` is for issuers whose access tokens carry no ``jti``
    (Auth0): revocation then relies on subject and client cutoffs.

    ``rfc9068=True`` holds tokens to the JWT access-token profile (RFC 9068):
    ``typ`` must be ``at+jwt`` (§4) and ``iat``, ``jti`` and ``client_id`` are
    required (§2.2). jotguard's own issuer signs such tokens; most remote issuers
    (Auth0: ``typ: JWT``) do not.
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
        rfc9068: bool = False,
    ) -> None:
        self.issuer = issuer
        self.audiences = tuple(audiences)
        self.keys = keys
        self.algorithms = frozenset(algorithms)
        self.leeway = leeway
        self.clock = clock
        self.rfc9068 = rfc9068
        self.require_jti = require_jti or rfc9068

    async def verify(self, token: UnverifiedToken) -> Principal:
        if token.alg not in self.algorithms:
            raise InvalidToken("The token algorithm is not accepted", reason="invalid_signature")
        if self.rfc9068:
            typ = token.header.get("typ")
            if not isinstance(typ, str) or typ.lower() not in _ACCESS_TOKEN_TYPES:
                raise InvalidToken(
                    "The token type must be at+jwt (RFC 9068 access token)", reason="malformed"
                )
        key = await self.keys.get_key(token.kid, token.alg)
        if key.alg != token.alg:
            raise InvalidToken(
                "The token algorithm does not match its key", reason="invalid_signature"
            )
        try:
            if not jws.validate_compact(token.signed(), key.key, algorithms=[key.alg]):
                raise BadSignatureError()
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
            issued_at=int(iat) if iat is not None else None,
            client_id=client_id,
            scopes=scopes_from_claims(claims),
            claims=claims,
            leeway=self.leeway,
            jkt=confirmation_jkt(claims),
        )

    def _validate_claims(self, claims: dict[str, Any]) -> None:
        # Types and times first, by jotguard itself: joserfc releases before 1.8 let a
        # boolean or NaN through as a NumericDate, or crashed on infinity, and the
        # boundaries must not move with the joserfc release installed.
        self._check_times(claims)
        self._check_strings(claims)
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
        except JoseError:
            # Older joserfc releases raise other types for a future nbf/iat; jotguard
            # has refused those above, so this is a claim joserfc alone objects to.
            raise _claim_error("set") from None

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        for name in _NUMERIC_DATES:
            if name in claims and not is_numeric_date(claims[name]):
                raise _claim_error(name, "is not a NumericDate")
        if "exp" not in claims:
            raise _claim_error("exp", "is missing")
        if self.rfc9068 and "iat" not in claims:
            raise _claim_error("iat", "is missing (required of an RFC 9068 access token)")
        now = self.clock()
        # RFC 7519 §4.1.4: valid only *before* exp.
        if claims["exp"] + self.leeway <= now:
            raise InvalidToken("The token has expired", reason="expired")
        if "nbf" in claims and claims["nbf"] > now + self.leeway:
            raise _claim_error("nbf", "is in the future: the token is not valid yet")
        if "iat" in claims and claims["iat"] > now + self.leeway:
            raise _claim_error("iat", "is in the future: the token was issued later than now")

    def _check_strings(self, claims: Mapping[str, Any]) -> None:
        sub = claims.get("sub")
        if sub is not None and (not isinstance(sub, str) or not sub):
            raise _claim_error("sub")
        jti = claims.get("jti")
        if (jti is not None or self.require_jti) and (not isinstance(jti, str) or not jti):
            raise _claim_error("jti")
        for name in _STRING_CLAIMS:
            # A client id that is not a string could not be matched by a client cutoff.
            value = claims.get(name)
            if value is not None and (not isinstance(value, str) or not value):
                raise _claim_error(name)
        if self.rfc9068 and "client_id" not in claims:
            raise _claim_error("client_id", "is missing (required of an RFC 9068 access token)")
