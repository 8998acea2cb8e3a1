"""Which published keys a remote issuer's JWKS document yields, and as what.

A key is used only if it is a public signature key for verification, of a type and
curve that fit an accepted algorithm, and (RSA) at least :data:`MIN_RSA_BITS` long;
anything else in the set is skipped, never tried.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import import_key

from backends.keys import ALGORITHM_KEY_TYPES, JoseKey, VerificationKey

log = logging.getLogger("jotguard.jwks")

MIN_RSA_BITS = 2048

# Signature algorithms a remote key may serve, with the curve each demands.
# Symmetric (oct) keys never come from a published key set.
_REMOTE_ALGORITHMS: dict[str, str | None] = {
    "RS256": None,
    "RS384": None,
    "RS512": None,
    "PS256": None,
    "ES256": "P-256",
    "ES384": "P-384",
    "EdDSA": None,
}
_OKP_SIGNATURE_CURVES = frozenset({"Ed25519", "Ed448"})
SUPPORTED_ALGORITHMS = frozenset(_REMOTE_ALGORITHMS)


class JWKSFetchError(Exception):
    """A refresh failed; ``str()`` is a one-line reason, safe to log and to expose."""


@dataclass(frozen=True, slots=True)
class RemoteKey:
    kid: str
    key: JoseKey
    by_alg: Mapping[str, VerificationKey]


def _rsa_bits(jwk: Mapping[str, Any]) -> int:
    n = jwk.get("n")
    if not isinstance(n, str) or not n:
        raise ValueError("has no modulus")
    try:
        raw = base64.b64decode(n + "=" * (-len(n) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("has a malformed modulus") from None
    return int.from_bytes(raw, "big").bit_length()


def _key_algorithms(jwk: Mapping[str, Any], allowed: frozenset[str]) -> frozenset[str]:
    """The algorithms ``jwk`` may verify: its declared ``alg``, else all of its type."""
    kty = jwk.get("kty")
    declared = jwk.get("alg")
    if declared is not None:
        if not isinstance(declared, str) or declared not in allowed:
            raise ValueError(f"declares algorithm {declared!r}, which is not accepted")
        candidates = {declared}
    else:
        candidates = set(allowed)
    fitting = {
        alg
        for alg in candidates
        if ALGORITHM_KEY_TYPES.get(alg) == kty and _REMOTE_ALGORITHMS[alg] in (None, jwk.get("crv"))
    }
    if not fitting:
        raise ValueError(f"of type {kty!r} fits none of the accepted algorithms")
    return frozenset(fitting)


def parse_key(jwk: Any, allowed: frozenset[str]) -> RemoteKey:
    """One published JWK as a verification key.

    :raises ValueError: the key is not a usable public signature key for ``allowed``.
    """
    if not isinstance(jwk, dict):
        raise ValueError("is not a JSON object")
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not kid:
        raise ValueError("has no kid")
    if jwk.get("use", "sig") != "sig":
        raise ValueError("is not a signature key")
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        raise ValueError("is not for verification")
    kty = jwk.get("kty")
    if not isinstance(kty, str) or kty not in {"RSA", "EC", "OKP"}:
        raise ValueError(f"has unsupported type {kty!r}")
    if not isinstance(jwk.get("crv", ""), str):
        raise ValueError("has a malformed curve name")
    if "d" in jwk:
        raise ValueError("carries private key material")  # a leaked private key: never use it
    if kty == "RSA" and _rsa_bits(jwk) < MIN_RSA_BITS:
        raise ValueError(f"is an RSA key under {MIN_RSA_BITS} bits")
    if kty == "OKP" and jwk.get("crv") not in _OKP_SIGNATURE_CURVES:
        raise ValueError("is not an Ed25519/Ed448 key")
    algorithms = _key_algorithms(jwk, allowed)
    try:
        key = import_key({k: v for k, v in jwk.items() if k != "key_ops"})
    except (JoseError, ValueError, TypeError, KeyError):
        raise ValueError("could not be imported") from None
    by_alg = {alg: VerificationKey(kid, alg, key) for alg in algorithms}
    return RemoteKey(kid, key, by_alg)


def parse_key_set(document: Any, allowed: frozenset[str]) -> dict[str, RemoteKey]:
    """The usable keys of a JWKS document, by kid.

    :raises JWKSFetchError: not a key set, or not one usable key in it.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JWKSFetchError("the response has no 'keys' array")
    keys: dict[str, RemoteKey] = {}
    for index, jwk in enumerate(document["keys"]):
        try:
            parsed = parse_key(jwk, allowed)
        except ValueError as exc:
            log.debug("JWKS key #%d skipped: it %s", index, exc)
            continue
        if parsed.kid in keys:
            log.warning("JWKS key id %r is published twice; the first one is used", parsed.kid)
            continue
        keys[parsed.kid] = parsed
    if not keys:
        raise JWKSFetchError("the key set has no usable signature key")
    return keys
