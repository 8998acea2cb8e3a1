"""Hand-built tokens for rejection tests: any header, any claims, any key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

from joserfc import jws

from backends.keys.keyring import StoredKey
from tests.conftest import TEST_ISSUER


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: Any) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


def good_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": TEST_ISSUER,
        "sub": "alice",
        "aud": "jotguard",
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        "client_id": "alice",
        "scope": "",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def sign(key: StoredKey, claims: dict[str, Any], **header: Any) -> str:
    """Sign by hand so any header (crit, jku, odd typ) can be produced."""
    protected = {"alg": key.alg, "kid": key.kid, "typ": "at+jwt", **header}
    protected = {k: v for k, v in protected.items() if v is not None}
    signing_input = f"{b64json(protected)}.{b64json(claims)}"
    algorithm = jws.JWSRegistry.algorithms[protected["alg"]]
    return f"{signing_input}.{b64(algorithm.sign(signing_input.encode(), key.key))}"


def sign_raw(key: StoredKey, header: bytes, payload: bytes) -> str:
    """A valid signature over header and payload bytes exactly as given (any encoding)."""
    signing_input = f"{b64(header)}.{b64(payload)}"
    algorithm = jws.JWSRegistry.algorithms[key.alg]
    return f"{signing_input}.{b64(algorithm.sign(signing_input.encode(), key.key))}"


def hmac_with(secret: bytes, claims: dict[str, Any], **header: Any) -> str:
    # By hand: joserfc itself refuses to use public-key bytes as an HMAC secret.
    signing_input = f"{b64json({'alg': 'HS256', 'typ': 'at+jwt', **header})}.{b64json(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def unsigned(claims: dict[str, Any], **header: Any) -> str:
    protected = {"alg": "none", "typ": "at+jwt", **header}
    return f"{b64json(protected)}.{b64json(claims)}."
