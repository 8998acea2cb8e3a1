"""A proof key's signature check, through ``cryptography`` directly.

joserfc's JWS algorithms look the operation key up, build the padding and hash
objects and (for ECDSA) re-derive the signature length on every call; here each of
those is done once, when the proof key is imported (``backends.dpop.jwk`` caches it),
and a proof costs the public-key operation and little else.

The key is built from members ``backends.dpop.jwk`` has already held to the proof's
``alg`` (type, curve, lengths, RSA size). ECDSA signatures in a JWS are the raw
``r || s``, each the curve's coordinate size (RFC 7518 §3.4): any other length is
refused before the DER that ``cryptography`` takes is built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from backends.dpop.encoding import b64url_decode

SignatureCheck = Callable[[bytes, bytes], bool]
"""``check(signing_input, signature)``: True when the key signed the input."""

_HASHES = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}
_CURVES: dict[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
}
_OKP_KEYS: dict[str, Callable[[bytes], Any]] = {
    "Ed25519": ed25519.Ed25519PublicKey.from_public_bytes,
    "Ed448": ed448.Ed448PublicKey.from_public_bytes,
}
# ES*: the size of r and of s (the coordinate size of the curve the algorithm uses).
_ECDSA_SIZES = {"ES256": 32, "ES384": 48, "ES512": 66}
_EDDSA = frozenset({"EdDSA", "Ed25519", "Ed448"})


def public_key(members: Mapping[str, str]) -> Any:
    """The ``cryptography`` public key of a proof's checked public members.

    :raises ValueError: with the reason: not a key (an EC point off its curve, or a
        coordinate not reduced modulo the field prime, an RSA exponent ``cryptography``
        refuses), or a curve this build of the library lacks.
    """
    kty = members["kty"]
    try:
        if kty == "EC":
            point = b"\x04" + b64url_decode(members["x"]) + b64url_decode(members["y"])
            return ec.EllipticCurvePublicKey.from_encoded_point(_CURVES[members["crv"]], point)
        if kty == "OKP":
            return _OKP_KEYS[members["crv"]](b64url_decode(members["x"]))
        e, n = (int.from_bytes(b64url_decode(members[name]), "big") for name in ("e", "n"))
        return rsa.RSAPublicNumbers(e, n).public_key()
    except UnsupportedAlgorithm:
        raise ValueError("uses a curve this server cannot check") from None
    except ValueError:
        raise ValueError("could not be imported") from None


def _ecdsa(
    key: ec.EllipticCurvePublicKey, size: int, digest: hashes.HashAlgorithm
) -> SignatureCheck:
    algorithm = ec.ECDSA(digest)

    def check(signing_input: bytes, signature: bytes) -> bool:
        if len(signature) != 2 * size:
            return False
        r = int.from_bytes(signature[:size], "big")
        s = int.from_bytes(signature[size:], "big")
        try:
            key.verify(encode_dss_signature(r, s), signing_input, algorithm)
        except InvalidSignature:
            return False
        return True

    return check


def _rsa(
    key: rsa.RSAPublicKey, scheme: padding.AsymmetricPadding, digest: hashes.HashAlgorithm
) -> SignatureCheck:
    def check(signing_input: bytes, signature: bytes) -> bool:
        try:
            key.verify(signature, signing_input, scheme, digest)
        except InvalidSignature:
            return False
        return True

    return check


def _eddsa(key: ed25519.Ed25519PublicKey | ed448.Ed448PublicKey) -> SignatureCheck:
    def check(signing_input: bytes, signature: bytes) -> bool:
        try:
            key.verify(signature, signing_input)
        except InvalidSignature:
            return False
        return True

    return check


def signature_check(alg: str, key: Any) -> SignatureCheck:
    """How ``key`` (from :func:`public_key`, of the type ``alg`` needs) checks ``alg``."""
    if alg in _EDDSA:
        return _eddsa(key)
    digest = _HASHES[alg[2:]]
    if alg in _ECDSA_SIZES:
        return _ecdsa(key, _ECDSA_SIZES[alg], digest)
    if alg.startswith("PS"):
        # RFC 7518 §3.5: MGF1 with the same hash, a salt as long as the hash.
        return _rsa(key, padding.PSS(padding.MGF1(digest), digest.digest_size), digest)
    return _rsa(key, padding.PKCS1v15(), digest)
