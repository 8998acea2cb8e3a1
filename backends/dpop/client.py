"""Making DPoP proofs, for clients and tests: keys, thumbprints, one proof per request.

    key = generate_key("ES256")            # keep it: tokens get bound to it
    proof = make_proof(key, "POST", "https://auth.example/oauth/token")
    # ... token response: {"token_type": "DPoP", "access_token": token}
    proof = make_proof(key, "GET", "https://api.example/data", access_token=token)
    # headers: Authorization: DPoP <token>, DPoP: <proof>

A proof is good once, for one method and URI (query and fragment are left out).
Signing is CPU work (RSA most): async code signs off the loop
(``await asyncio.to_thread(make_proof, ...)``) when it signs many.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from joserfc import jws
from joserfc.jwk import ECKey, OKPKey, RSAKey, import_key

from backends.dpop.jwk import THUMBPRINT_MEMBERS, thumbprint
from backends.dpop.policy import PROOF_ALGORITHMS
from backends.dpop.proof import access_token_hash
from backends.keys import JoseKey

if TYPE_CHECKING:
    from joserfc.jwk import KeyParameters

_EC_ALGORITHMS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}


def generate_key(alg: str = "ES256") -> JoseKey:
    """A new private key for ``alg`` (its JWK names the algorithm): P-256 for ES256,
    Ed25519 for EdDSA, 2048-bit RSA for PS256/RS256."""
    if alg not in PROOF_ALGORITHMS:
        raise ValueError(f"{alg!r} is not a DPoP proof algorithm")
    kty, curves = PROOF_ALGORITHMS[alg]
    parameters: KeyParameters = {"alg": alg}
    key: JoseKey
    if kty == "RSA":
        key = RSAKey.generate_key(2048, parameters, private=True)
    elif kty == "EC":
        (curve,) = curves
        key = ECKey.generate_key(curve, parameters, private=True)
    else:
        curve = "Ed25519" if "Ed25519" in curves else "Ed448"
        key = OKPKey.generate_key(curve, parameters, private=True)  # type: ignore[arg-type]
    return key


def _as_key(key: JoseKey | Mapping[str, Any]) -> JoseKey:
    if isinstance(key, Mapping):
        imported: JoseKey = import_key(dict(key))
        return imported
    return key


def public_jwk(key: JoseKey | Mapping[str, Any]) -> dict[str, str]:
    """The public members of ``key``: what a proof's ``jwk`` header carries."""
    members = _as_key(key).as_dict(private=False)
    return {name: str(members[name]) for name in THUMBPRINT_MEMBERS[str(members["kty"])]}


def jwk_thumbprint(key: JoseKey | Mapping[str, Any]) -> str:
    """The key's RFC 7638 thumbprint: the ``cnf.jkt`` of tokens bound to it."""
    return thumbprint(public_jwk(key))


def proof_algorithm(key: JoseKey | Mapping[str, Any]) -> str:
    """The key's own ``alg``, else ES256/384/512 by curve, EdDSA, or RS256 for RSA."""
    private = _as_key(key)
    declared = private.get("alg")
    if isinstance(declared, str):
        return declared
    members = public_jwk(private)
    if members["kty"] == "EC":
        return _EC_ALGORITHMS[members["crv"]]
    return "EdDSA" if members["kty"] == "OKP" else "RS256"


def make_proof(
    key: JoseKey | Mapping[str, Any],
    method: str,
    url: str,
    *,
    access_token: str | None = None,
    nonce: str | None = None,
    iat: float | None = None,
    jti: str | None = None,
    alg: str | None = None,
) -> str:
    """A DPoP proof JWT (RFC 9449 §4.2) for one request of ``method`` to ``url``.

    :param key: the client's private key (joserfc key or JWK dict).
    :param access_token: the token the request carries: its hash goes in ``ath``.
    :param nonce: the server's latest ``DPoP-Nonce``, when it asks for one.
    :param iat: issue time (epoch seconds), now by default; ``jti`` random by default.
    :param alg: the signature algorithm; by default from the key (:func:`proof_algorithm`).
    """
    private = _as_key(key)
    algorithm = alg or proof_algorithm(private)
    header = {"typ": "dpop+jwt", "alg": algorithm, "jwk": public_jwk(private)}
    claims: dict[str, Any] = {
        "jti": jti if jti is not None else secrets.token_urlsafe(24),
        "htm": method,
        "htu": url.partition("#")[0].partition("?")[0],
        "iat": int(time.time()) if iat is None else iat,
    }
    if access_token is not None:
        claims["ath"] = access_token_hash(access_token)
    if nonce is not None:
        claims["nonce"] = nonce
    payload = json.dumps(claims, separators=(",", ":"))
    return jws.serialize_compact(header, payload, private, algorithms=[algorithm])
