"""Reading a compact JWS before trusting it: size cap, shape, header policy.

Only what is needed to route the token (``iss``) and pick a key (``kid``) is
read here; nothing read here is trusted until the signature has been checked.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from joserfc import jws

from backends import strict_json
from backends.errors import InvalidToken

MAX_TOKEN_BYTES = 8 * 1024

# Headers that would let the token choose its own key or extend the rules: never honoured.
_FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "crit"})
_ACCEPTED_TYP = frozenset({"at+jwt", "application/at+jwt", "jwt", "application/jwt"})


@dataclass(frozen=True, slots=True)
class UnverifiedToken:
    raw: str
    header: dict[str, Any]
    claims: dict[str, Any]
    payload: bytes | None = None
    """The payload's bytes, as decoded for ``claims``."""

    def signed(self) -> jws.CompactSignature:
        """The token as joserfc's signed object, from what was parsed here: verifying
        it does not decode the header again (a token is parsed once)."""
        header, payload, signature = self.raw.encode("ascii").split(b".")
        body = self.payload if self.payload is not None else _b64decode(payload.decode())
        obj = jws.CompactSignature(self.header, body)
        obj.segments.update({"header": header, "payload": payload, "signature": signature})
        return obj

    @property
    def kid(self) -> str | None:
        """The key id, or None when the header names none (RFC 7515 §4.1.4: optional)."""
        if "kid" not in self.header:
            return None
        kid = self.header["kid"]
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("The token header's key id is not a string", reason="malformed")
        return kid

    @property
    def alg(self) -> str:
        return str(self.header["alg"])

    @property
    def issuer(self) -> str | None:
        iss = self.claims.get("iss")
        return iss if isinstance(iss, str) else None


def _b64decode(segment: str) -> bytes:
    if "=" in segment:
        raise ValueError("padding is not allowed in base64url segments")
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _b64(segment: str, what: str) -> bytes:
    try:
        return _b64decode(segment)
    except (ValueError, binascii.Error):
        raise InvalidToken(
            f"The token {what} is not base64url-encoded UTF-8 JSON", reason="malformed"
        ) from None


def _json_object(segment: str, what: str, decoded: bytes | None = None) -> dict[str, Any]:
    # The one place a token's bytes become JSON: strictly (RFC 7519 §7.2, RFC 8259 §8.1).
    try:
        value = strict_json.loads(_b64decode(segment) if decoded is None else decoded)
    except (ValueError, binascii.Error, RecursionError):
        raise InvalidToken(
            f"The token {what} is not base64url-encoded UTF-8 JSON", reason="malformed"
        ) from None
    if not isinstance(value, dict):
        raise InvalidToken(f"The token {what} is not a JSON object", reason="malformed")
    return value


def parse_compact(token: str) -> UnverifiedToken:
    """Split and decode a compact JWS, enforcing the size cap and header policy.

    :raises InvalidToken: for anything but a well-formed, acceptable JWS.
    """
    if len(token) > MAX_TOKEN_BYTES:
        raise InvalidToken("The token is too large", reason="malformed")
    if not token.isascii():
        raise InvalidToken("The token is not a compact JWS", reason="malformed")
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        raise InvalidToken("The token is not a compact JWS", reason="malformed")
    header = _json_object(parts[0], "header")
    payload = _b64(parts[1], "payload")
    claims = _json_object(parts[1], "payload", payload)
    alg = header.get("alg")
    if not isinstance(alg, str) or alg.lower() == "none":
        raise InvalidToken("The token algorithm is not accepted", reason="invalid_signature")
    forbidden = _FORBIDDEN_HEADERS.intersection(header)
    if forbidden:
        raise InvalidToken(
            f"The token header carries a refused parameter: {sorted(forbidden)[0]}",
            reason="malformed",
        )
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.lower() not in _ACCEPTED_TYP):
        raise InvalidToken(
            "The token type is not an access token (at+jwt, or JWT)", reason="malformed"
        )
    return UnverifiedToken(raw=token, header=header, claims=claims, payload=payload)
