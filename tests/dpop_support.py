"""Keys and hand-made DPoP proofs for the DPoP tests: any header, any payload, signed.

``make_proof`` only makes well-formed proofs; attack cases need proofs that are
validly signed yet wrong in exactly one way, so the check under test is the only
one that can refuse them. :func:`check` and :func:`refused` put them to ``verify_proof``.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from joserfc.jws import JWSRegistry

from backends.dpop import (
    DPoPPolicy,
    InvalidDPoPProof,
    VerifiedProof,
    generate_key,
    public_jwk,
    verify_proof,
)
from backends.dpop.encoding import b64url_encode
from backends.keys import JoseKey
from webapp.web.errors import error_answer

URL = "https://api.example/things"
TOKEN = "an-access-token"
POLICY = DPoPPolicy()

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


def check(proof: str, **kwargs: Any) -> VerifiedProof:
    """``verify_proof`` of a GET of ``URL`` now under ``POLICY``, unless told otherwise."""
    kwargs.setdefault("method", "GET")
    kwargs.setdefault("url", URL)
    kwargs.setdefault("policy", POLICY)
    kwargs.setdefault("now", time.time())
    return verify_proof(proof, **kwargs)


def refused(proof: str, reason: str, *, match: str = "", **kwargs: Any) -> InvalidDPoPProof:
    """:func:`check` refuses ``proof`` for ``reason``, as a 401 ``invalid_dpop_proof``."""
    with pytest.raises(InvalidDPoPProof) as caught:
        check(proof, **kwargs)
    assert caught.value.reason == reason, caught.value.description
    assert match in caught.value.description
    assert caught.value.error == "invalid_dpop_proof"
    assert error_answer(caught.value).status == 401
    return caught.value
