"""The proof's ``jwk`` header as a public verification key, and its RFC 7638 thumbprint.

The key comes from the proof itself, so it is held to the import policy of
``backends.keys.jwks.keyset`` and more: public members only, a type and curve that fit the
proof's ``alg``, canonical encodings (so one key has one thumbprint), and RSA
sizes bounded both ways (a huge modulus or exponent is a cheap way to make the
server work). Imported keys are cached by their members, with their signature check
built once (``backends.dpop.signature``): a client signs many proofs with one key.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from joserfc.jwk import thumbprint as rfc7638_thumbprint

from backends.dpop.encoding import b64url_decode
from backends.dpop.policy import PROOF_ALGORITHMS
from backends.dpop.signature import SignatureCheck, public_key, signature_check
from backends.keys.jwks.keyset import MIN_RSA_BITS

MAX_RSA_BITS = 4096
MAX_RSA_EXPONENT_BYTES = 4
IMPORTED_KEYS_CACHED = 1024

# RFC 7638 §3.2: the members a thumbprint covers, per key type (RFC 8037 §2 for OKP).
THUMBPRINT_MEMBERS: dict[str, tuple[str, ...]] = {
    "RSA": ("e", "kty", "n"),
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
}
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_COORDINATE_BYTES = {"P-256": 32, "P-384": 48, "P-521": 66, "Ed25519": 32, "Ed448": 57}


@dataclass(frozen=True, slots=True)
class ProofKey:
    """A proof's public key, as the check of one algorithm's signatures, and its
    thumbprint (``cnf.jkt`` of the tokens bound to it)."""

    check: SignatureCheck
    jkt: str
    public_jwk: Mapping[str, str]


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint (base64url) of a public or private JWK.

    :raises ValueError: ``jwk`` lacks a member the thumbprint covers.
    """
    kty = jwk.get("kty")
    members = THUMBPRINT_MEMBERS.get(kty) if isinstance(kty, str) else None
    if members is None:
        raise ValueError(f"key type {kty!r} has no thumbprint here")
    if not all(isinstance(jwk.get(name), str) for name in members):
        raise ValueError("the key lacks a member its thumbprint covers")
    return rfc7638_thumbprint({name: jwk[name] for name in members})


def _unsigned(member: str, value: str) -> bytes:
    raw = b64url_decode(value)
    if not raw or raw[0] == 0:
        raise ValueError(f"has a non-minimal '{member}'")
    return raw


def _check_members(kty: str, curves: frozenset[str], members: Mapping[str, str]) -> None:
    if kty == "RSA":
        bits = int.from_bytes(_unsigned("n", members["n"]), "big").bit_length()
        if not MIN_RSA_BITS <= bits <= MAX_RSA_BITS:
            raise ValueError(f"is an RSA key of {bits} bits ({MIN_RSA_BITS}-{MAX_RSA_BITS})")
        exponent = _unsigned("e", members["e"])
        if len(exponent) > MAX_RSA_EXPONENT_BYTES:
            raise ValueError("has an oversized RSA exponent")
        return
    crv = members["crv"]
    if crv not in curves:
        raise ValueError(f"has curve {crv!r}, which the algorithm does not use")
    coordinates = ("x", "y") if kty == "EC" else ("x",)
    for name in coordinates:
        if len(b64url_decode(members[name])) != _COORDINATE_BYTES[crv]:
            raise ValueError(f"has a '{name}' of the wrong length")


@functools.lru_cache(maxsize=IMPORTED_KEYS_CACHED)
def _import(alg: str, members: tuple[tuple[str, str], ...]) -> ProofKey:
    kty, curves = PROOF_ALGORITHMS[alg]
    values = dict(members)
    _check_members(kty, curves, values)
    check = signature_check(alg, public_key(values))
    # Read-only: the cached key is shared by every proof it signs.
    return ProofKey(check, rfc7638_thumbprint(values), MappingProxyType(values))


def _require_public(jwk: Any) -> None:
    if not isinstance(jwk, dict):
        raise ValueError("is not a JSON object")
    if _PRIVATE_MEMBERS.intersection(jwk):
        raise ValueError("carries private key material")


def proof_key(jwk: Any, alg: str) -> ProofKey:
    """The public key a proof with ``alg`` carries in its ``jwk`` header.

    :raises ValueError: with the reason, when it is not a usable public key for ``alg``.
    """
    _require_public(jwk)
    kty, _ = PROOF_ALGORITHMS[alg]
    if jwk.get("kty") != kty:
        raise ValueError(f"is of type {jwk.get('kty')!r}; {alg} needs {kty}")
    if jwk.get("use", "sig") != "sig":
        raise ValueError("is not a signature key")
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        raise ValueError("is not for verification")
    if jwk.get("alg", alg) != alg:
        raise ValueError("declares another algorithm")
    names = THUMBPRINT_MEMBERS[kty]
    values = [jwk.get(name) for name in names]
    if not all(isinstance(value, str) for value in values):
        raise ValueError("lacks a public key member")
    return _import(alg, tuple(zip(names, values, strict=True)))


def bindable_key(jwk: Any, algorithms: Sequence[str]) -> ProofKey:
    """The public key ``jwk`` names, as proofs by it would carry it, to bind a token to
    out of band (``jotguard token issue --dpop-jwk``): held to :func:`proof_key` for
    the first of ``algorithms`` its type and curve fit (its own ``alg``, if it names one).

    :raises ValueError: with the reason, when no proof by it could be accepted.
    """
    _require_public(jwk)
    kty, crv, declared = jwk.get("kty"), jwk.get("crv"), jwk.get("alg")
    fitting = [
        alg
        for alg in algorithms
        if PROOF_ALGORITHMS[alg][0] == kty
        and (kty == "RSA" or (isinstance(crv, str) and crv in PROOF_ALGORITHMS[alg][1]))
        and declared in (None, alg)
    ]
    if not fitting:
        what = " ".join(str(part) for part in (kty, crv, declared) if part is not None)
        accepted = ", ".join(algorithms)
        raise ValueError(f"({what or 'no kty'}) fits none of the DPoP algorithms ({accepted})")
    return proof_key(jwk, fitting[0])
