"""Checking one DPoP proof JWT as RFC 9449 §4.3 says: a pure function of the proof,
the request, the presented token and the clock.

The replay check is the caller's next step (``backends.dpop.verifier``): a proof is
remembered only once everything else about it, and the token it came with, passed.
Cheap checks run first and the signature last, so garbage costs no public-key
operation.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from joserfc.errors import JoseError
from joserfc.jws import JWSRegistry

from backends.dpop.encoding import b64url_decode, b64url_encode, json_object
from backends.dpop.errors import DPoPKeyMismatch, InvalidDPoPProof, UseDPoPNonce
from backends.dpop.htu import normalize_htu, normalize_request_uri
from backends.dpop.jwk import proof_key
from backends.dpop.policy import PROOF_ALGORITHMS, DPoPPolicy

_ACCEPTED_TYP = frozenset({"dpop+jwt", "application/dpop+jwt"})
# Headers that would name a key other than ``jwk``, or rules we do not know: refused,
# as jotguard's token verifier refuses them. ``b64`` would change what was signed.
_REFUSED_HEADERS = frozenset({"jku", "x5u", "x5c", "crit", "b64", "zip"})
# As joserfc registers them: an older joserfc may lack RFC 9864's names.
_SIGNATURE_ALGORITHMS = {
    name: JWSRegistry.algorithms[name]
    for name in PROOF_ALGORITHMS
    if name in JWSRegistry.algorithms
}


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


def _decode(proof: str, policy: DPoPPolicy) -> tuple[list[str], dict[str, Any], dict[str, Any]]:
    if len(proof) > policy.max_proof_bytes:
        raise _refuse("The DPoP proof is too large", "dpop_malformed")
    parts = proof.split(".")
    if not proof.isascii() or len(parts) != 3 or not all(parts):
        raise _refuse("The DPoP proof is not a compact JWS", "dpop_malformed")
    try:
        header = json_object(b64url_decode(parts[0]))
        claims = json_object(b64url_decode(parts[1]))
    except ValueError:
        raise _refuse("The DPoP proof is not base64url JSON", "dpop_malformed") from None
    return parts, header, claims


def _check_header(header: dict[str, Any], policy: DPoPPolicy) -> str:
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in _ACCEPTED_TYP:
        raise _refuse("The DPoP proof type must be dpop+jwt", "dpop_typ")
    alg = header.get("alg")
    if (
        not isinstance(alg, str)
        or alg not in policy.accepted_algorithms
        or alg not in _SIGNATURE_ALGORITHMS
    ):
        accepted = " ".join(policy.advertised)
        raise _refuse(f"The DPoP proof algorithm is not accepted ({accepted})", "dpop_alg")
    refused = _REFUSED_HEADERS.intersection(header)
    if refused:
        name = sorted(refused)[0]
        raise _refuse(f"The DPoP proof header carries a refused parameter: {name}", "dpop_header")
    return alg


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


def _check_htu(htu: str, url: str) -> None:
    try:
        matches = normalize_htu(htu) == normalize_request_uri(url)
    except ValueError:
        matches = False
    if not matches:
        raise _refuse("The DPoP proof 'htu' does not match the request URI", "dpop_htu")


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
    parts, header, claims = _decode(proof, policy)
    alg = _check_header(header, policy)
    jwk = header.get("jwk")
    try:
        key = proof_key(jwk, alg)
    except ValueError as exc:
        raise _refuse(f"The DPoP proof key {exc}", "dpop_jwk") from None
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
        if not isinstance(ath, str) or not hmac.compare_digest(
            ath.encode(), access_token_hash(access_token).encode()
        ):
            raise _refuse("The DPoP proof 'ath' does not match the access token", "dpop_ath")
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    try:
        signature = b64url_decode(parts[2])
        valid = _SIGNATURE_ALGORITHMS[alg].verify(signing_input, signature, key.key)
    except (ValueError, TypeError, JoseError):
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
