"""Keys and hand-made DPoP proofs for the DPoP tests: any header, any payload, signed.

``make_proof`` only makes well-formed proofs; attack cases need proofs that are
validly signed yet wrong in exactly one way, so the check under test is the only
one that can refuse them.
"""

from __future__ import annotations

import json
import time
from typing import Any

from joserfc.jws import JWSRegistry

from backends.dpop import generate_key, public_jwk
from backends.dpop.encoding import b64url_encode
from backends.keys import JoseKey

URL = "https://api.example/things"
TOKEN = "an-access-token"

_KEYS: dict[str, JoseKey] = {}


def key_for(alg: str) -> JoseKey:
    """One key per algorithm for the whole session: RSA generation is slow."""
    if alg not in _KEYS:
        _KEYS[alg] = generate_key(alg)
    return _KEYS[alg]


def encode(part: dict[str, Any] | bytes) -> str:
    raw = part if isinstance(part, bytes) else json.dumps(part).encode()
    return b64url_encode(raw)


def sign_raw(
    header: dict[str, Any] | bytes, claims: dict[str, Any] | bytes, key: Any, alg: str
) -> str:
    signing_input = f"{encode(header)}.{encode(claims)}"
    signature = JWSRegistry.algorithms[alg].sign(signing_input.encode(), key)
    return f"{signing_input}.{b64url_encode(signature)}"


def header_for(key: JoseKey, alg: str, **extra: Any) -> dict[str, Any]:
    header: dict[str, Any] = {"typ": "dpop+jwt", "alg": alg, "jwk": public_jwk(key)}
    header.update(extra)
    return header


def claims_for(method: str = "GET", url: str = URL, **extra: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "jti": "a-unique-id",
        "htm": method,
        "htu": url,
        "iat": int(time.time()),
    }
    claims.update(extra)
    return claims


def proof_with(
    alg: str = "ES256",
    *,
    header: dict[str, Any] | None = None,
    claims: dict[str, Any] | None = None,
    drop_claims: tuple[str, ...] = (),
    drop_header: tuple[str, ...] = (),
) -> str:
    """A signed proof by ``key_for(alg)``, its header and claims updated and pruned."""
    key = key_for(alg)
    full_header = header_for(key, alg, **(header or {}))
    full_claims = claims_for()
    full_claims.update(claims or {})
    for name in drop_claims:
        full_claims.pop(name, None)
    for name in drop_header:
        full_header.pop(name, None)
    return sign_raw(full_header, full_claims, key, alg)
