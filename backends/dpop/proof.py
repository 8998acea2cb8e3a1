"""Checking one DPoP proof JWT as RFC 9449 §4.3 says: a pure function of the proof,
the request, the presented token and the clock.

The replay check is the caller's next step (``backends.dpop.verifier``): a proof is
remembered only once everything else about it, and the token it came with, passed.
Cheap checks run first and the signature last, so garbage costs no public-key
operation.

What a client repeats from proof to proof is checked once and remembered by its exact
text (``backends.dpop.string_cache``): the header (type, algorithm, the key with its
signature check and thumbprint), the normal form of ``htu`` and the hash of the token.
Only what passed is remembered, so a header that differs from an accepted one by a
single character (a private member, another curve...) is checked in full.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from backends.dpop.encoding import b64url_decode, b64url_encode, json_object
from backends.dpop.errors import DPoPKeyMismatch, InvalidDPoPProof, UseDPoPNonce
from backends.dpop.htu import normalize_htu, normalize_request_uri
from backends.dpop.jwk import ProofKey, proof_key
from backends.dpop.policy import DPoPPolicy
from backends.dpop.string_cache import string_cache

_ACCEPTED_TYP = frozenset({"dpop+jwt", "application/dpop+jwt"})
# Headers that would name a key other than ``jwk``, or rules we do not know: refused,
# as jotguard's token verifier refuses them. ``b64`` would change what was signed.
_REFUSED_HEADERS = frozenset({"jku", "x5u", "x5c", "crit", "b64", "zip"})
# A client's proofs repeat their header, htu and token: one entry per client key (a
# header with an RSA-4096 key is about 1,000 characters), per URL, per live token.
HEADERS_CACHED = 1024
HEADER_CACHE_MAX_CHARS = 2048
HTUS_CACHED = 256
HTU_CACHE_MAX_CHARS = 1024
TOKEN_HASHES_CACHED = 1024
TOKEN_HASH_CACHE_MAX_CHARS = 4096


class NonceChecker(Protocol):
    """Server nonces (RFC 9449 §8-9): see ``backends.dpop.nonce.StatelessNonces``."""

    def check(self, nonce: str, now: float) -> bool: ...

    def issue(self, now: float) -> str: ...


@dataclass(frozen=True, slots=True)
class VerifiedProof:
    """What a checked proof establishes.

    ``jkt`` is the RFC 7638 thumbprint of the proof key: the ``cnf.jkt`` to bind a
    token to, or to compare a bound token with. ``expires_at`` is the last moment
    the proof would still be accepted, so the replay cache keeps ``jti`` until then.
    """

    jkt: str
    jti: str
    iat: float
    htm: str
    htu: str
    alg: str
    nonce: str | None
    expires_at: float
    public_jwk: Mapping[str, str]


def access_token_hash(access_token: str) -> str:
    """``ath``: base64url(SHA-256(token)) (RFC 9449 §4.2; tokens are ASCII)."""
    return b64url_encode(hashlib.sha256(access_token.encode()).digest())


def single_proof(values: Sequence[str]) -> str:
    """The one ``DPoP`` header value of a request (RFC 9449 §4.3, checks 1-2).

    :raises InvalidDPoPProof: none, several fields, or several values in one field.
    """
    if not values:
        raise InvalidDPoPProof("A DPoP proof is required", reason="dpop_missing")
    if len(values) > 1 or "," in values[0]:
        raise InvalidDPoPProof("Exactly one DPoP proof is allowed", reason="dpop_multiple")
    return values[0].strip(" \t")


def _refuse(description: str, reason: str) -> InvalidDPoPProof:
    return InvalidDPoPProof(description, reason=reason)


def _json_segment(segment: str) -> dict[str, Any]:
    try:
        return json_object(b64url_decode(segment))
    except ValueError:
        raise _refuse("The DPoP proof is not base64url JSON", "dpop_malformed") from None


def _check_header(header: dict[str, Any], policy: DPoPPolicy) -> str:
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in _ACCEPTED_TYP:
        raise _refuse("The DPoP proof type must be dpop+jwt", "dpop_typ")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in policy.accepted_algorithms:
        accepted = " ".join(policy.advertised)
        raise _refuse(f"The DPoP proof algorithm is not accepted ({accepted})", "dpop_alg")
    refused = _REFUSED_HEADERS.intersection(header)
    if refused:
        name = sorted(refused)[0]
        raise _refuse(f"The DPoP proof header carries a refused parameter: {name}", "dpop_header")
    return alg


@string_cache(HEADERS_CACHED, HEADER_CACHE_MAX_CHARS)
def _checked_header(segment: str, policy: DPoPPolicy) -> tuple[str, ProofKey]:
    """The algorithm and key of a proof header that passes every check of ``policy``."""
    header = _json_segment(segment)
    alg = _check_header(header, policy)
    try:
        return alg, proof_key(header.get("jwk"), alg)
    except ValueError as exc:
        raise _refuse(f"The DPoP proof key {exc}", "dpop_jwk") from None


def _string_claim(claims: dict[str, Any], name: str, limit: int | None = None) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value or (limit is not None and len(value) > limit):
        raise _refuse(f"The DPoP proof claim '{name}' is missing or invalid", "dpop_claims")
    return value


def _check_iat(claims: dict[str, Any], policy: DPoPPolicy, now: float) -> float:
    iat = claims.get("iat")
    if isinstance(iat, bool) or not isinstance(iat, (int, float)) or not math.isfinite(iat):
        raise _refuse("The DPoP proof claim 'iat' is missing or invalid", "dpop_claims")
    if iat < now - policy.proof_lifetime - policy.leeway:
        raise _refuse("The DPoP proof is too old", "dpop_iat")
    if iat > now + policy.leeway:
        raise _refuse("The DPoP proof is issued in the future", "dpop_iat")
    return float(iat)


@string_cache(HTUS_CACHED, HTU_CACHE_MAX_CHARS)
def _normal_htu(htu: str) -> str | None:
    try:
        return normalize_htu(htu)
    except ValueError:
        return None


def _check_htu(htu: str, url: str) -> None:
    try:
        matches = _normal_htu(htu) == normalize_request_uri(url)
    except ValueError:
        matches = False
    if not matches:
        raise _refuse("The DPoP proof 'htu' does not match the request URI", "dpop_htu")


@string_cache(TOKEN_HASHES_CACHED, TOKEN_HASH_CACHE_MAX_CHARS)
def _expected_ath(access_token: str) -> bytes:
    return access_token_hash(access_token).encode()


def verify_proof(
    proof: str,
    *,
    method: str,
    url: str,
    policy: DPoPPolicy,
    now: float,
    access_token: str | None = None,
    expected_jkt: str | None = None,
    nonces: NonceChecker | None = None,
) -> VerifiedProof:
    """Check ``proof`` for a request of ``method`` to ``url`` (its absolute URI).

    :param access_token: the token presented with the proof: ``ath`` must hash it.
    :param expected_jkt: the presented token's ``cnf.jkt``: the proof key must have it.
    :param nonces: require a recent server nonce in the proof.
    :raises InvalidDPoPProof: the proof is refused (``reason`` says which check).
    :raises DPoPKeyMismatch: a valid proof, by another key than ``expected_jkt``.
    :raises UseDPoPNonce: otherwise valid, but without a nonce ``nonces`` accepts.
    """
    if len(proof) > policy.max_proof_bytes:
        raise _refuse("The DPoP proof is too large", "dpop_malformed")
    parts = proof.split(".")
    if not proof.isascii() or len(parts) != 3 or not all(parts):
        raise _refuse("The DPoP proof is not a compact JWS", "dpop_malformed")
    head, payload, signature = parts
    # Both parts are read before either is judged: a malformed proof is called malformed.
    claims = _json_segment(payload)
    alg, key = _checked_header(head, policy)
    jti = _string_claim(claims, "jti", policy.max_jti_chars)
    htm = _string_claim(claims, "htm")
    htu = _string_claim(claims, "htu")
    if htm != method:
        raise _refuse("The DPoP proof 'htm' does not match the request method", "dpop_htm")
    _check_htu(htu, url)
    iat = _check_iat(claims, policy, now)
    nonce = claims.get("nonce")
    if nonce is not None and (not isinstance(nonce, str) or not nonce):
        raise _refuse("The DPoP proof claim 'nonce' is invalid", "dpop_claims")
    if access_token is not None:
        ath = claims.get("ath")
        # The strict JSON parser admits no lone surrogate: encode() cannot fail.
        if not isinstance(ath, str) or not hmac.compare_digest(
            ath.encode(), _expected_ath(access_token)
        ):
            raise _refuse("The DPoP proof 'ath' does not match the access token", "dpop_ath")
    try:
        valid = key.check(f"{head}.{payload}".encode("ascii"), b64url_decode(signature))
    except ValueError:  # not canonical base64url
        valid = False
    if not valid:
        raise _refuse("The DPoP proof signature is invalid", "dpop_signature")
    if expected_jkt is not None and not hmac.compare_digest(key.jkt, expected_jkt):
        raise DPoPKeyMismatch()
    if nonces is not None and (nonce is None or not nonces.check(nonce, now)):
        raise UseDPoPNonce(
            "The DPoP proof must carry a recent server nonce", nonce=nonces.issue(now)
        )
    return VerifiedProof(
        jkt=key.jkt,
        jti=jti,
        iat=iat,
        htm=htm,
        htu=htu,
        alg=alg,
        nonce=nonce,
        expires_at=iat + policy.proof_lifetime + policy.leeway,
        public_jwk=key.public_jwk,
    )
