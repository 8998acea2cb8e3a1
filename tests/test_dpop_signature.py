"""Proof signatures checked through ``cryptography`` directly, and what is remembered
between proofs (the header with its key, ``htu``, ``ath``): only ever what passed."""

from __future__ import annotations

import base64

import pytest
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

import backends.dpop.signature
from backends.dpop import DPoPPolicy, generate_key, jwk_thumbprint, public_jwk
from backends.dpop.encoding import b64url_encode
from backends.dpop.policy import PROOF_ALGORITHMS
from backends.dpop.proof import _checked_header
from backends.dpop.string_cache import string_cache
from tests.dpop_support import check, claims_for, encode, header_for, key_for, refused, sign_raw

EVERY_ALGORITHM = DPoPPolicy(algorithms=tuple(PROOF_ALGORITHMS))
# P-256's field prime: a coordinate at or above it is not reduced, whatever it aliases.
P256_PRIME = 2**256 - 2**224 + 2**192 + 2**96 - 1
P256_B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B


@pytest.mark.parametrize("alg", sorted(PROOF_ALGORITHMS))
def test_every_proof_algorithm_checks_its_own_signatures(alg):
    key = key_for(alg)
    proof = sign_raw(header_for(key, alg), claims_for(), key, alg)
    assert check(proof, policy=EVERY_ALGORITHM).jkt == jwk_thumbprint(key)
    impostor = generate_key(alg)
    forged = sign_raw(header_for(key, alg), claims_for(), impostor, alg)
    refused(forged, "dpop_signature", policy=EVERY_ALGORITHM)


def test_an_ecdsa_signature_in_der_is_refused():
    # JWS signatures are r || s (RFC 7518 §3.4); the DER cryptography makes is another
    # encoding of the same signature, and is not one a proof may use.
    key = key_for("ES256")
    signing_input = f"{encode(header_for(key, 'ES256'))}.{encode(claims_for())}"
    der = key.private_key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    refused(f"{signing_input}.{b64url_encode(der)}", "dpop_signature")


@pytest.mark.parametrize("cut", [1, 32])
def test_an_ecdsa_signature_of_another_length_is_refused(cut):
    head, payload, signature = sign_raw(
        header_for(key_for("ES256"), "ES256"), claims_for(), key_for("ES256"), "ES256"
    ).split(".")
    raw = base64.urlsafe_b64decode(signature + "==")
    refused(f"{head}.{payload}.{b64url_encode(raw[:-cut])}", "dpop_signature")
    refused(f"{head}.{payload}.{b64url_encode(raw + raw[:cut])}", "dpop_signature")


def test_a_coordinate_not_reduced_modulo_the_prime_is_refused():
    # x + p names the point x names: a second thumbprint for one key, so it is no key.
    x = next(x for x in range(1, 100) if _on_p256(x) is not None)
    y = _on_p256(x)
    assert y is not None
    alias = {
        "kty": "EC",
        "crv": "P-256",
        "x": b64url_encode((x + P256_PRIME).to_bytes(32, "big")),
        "y": b64url_encode(y.to_bytes(32, "big")),
    }
    signer = key_for("ES256")
    proof = sign_raw(header_for(signer, "ES256", jwk=alias), claims_for(), signer, "ES256")
    refused(proof, "dpop_jwk", match="could not be imported")


def _on_p256(x: int) -> int | None:
    rhs = (x**3 - 3 * x + P256_B) % P256_PRIME
    y = pow(rhs, (P256_PRIME + 1) // 4, P256_PRIME)  # p = 3 (mod 4)
    return y if y * y % P256_PRIME == rhs else None


def test_a_curve_the_library_lacks_is_refused_not_a_500(monkeypatch):
    def unsupported(_: bytes) -> None:
        raise UnsupportedAlgorithm("no Ed448 in this build")

    monkeypatch.setitem(backends.dpop.signature._OKP_KEYS, "Ed448", unsupported)
    key = generate_key("Ed448")  # a key never imported before: no cached import
    proof = sign_raw(header_for(key, "Ed448"), claims_for(), key, "Ed448")
    refused(proof, "dpop_jwk", match="cannot check")


def test_a_header_is_remembered_once_accepted_and_only_for_its_policy():
    key = key_for("ES256")
    header = header_for(key, "ES256")
    check(sign_raw(header, claims_for(jti="first"), key, "ES256"))
    hits = _checked_header.cache_info().hits  # type: ignore[attr-defined]
    check(sign_raw(header, claims_for(jti="second"), key, "ES256"))
    assert _checked_header.cache_info().hits == hits + 1  # type: ignore[attr-defined]
    # The same header text under a policy that does not take ES256.
    proof = sign_raw(header, claims_for(), key, "ES256")
    refused(proof, "dpop_alg", policy=DPoPPolicy(algorithms=("RS256",)))
    # One member more (the private key) is another header, checked in full.
    private = {**public_jwk(key), "d": key.as_dict(private=True)["d"]}
    refused(sign_raw(header_for(key, "ES256", jwk=private), claims_for(), key, "ES256"), "dpop_jwk")


def test_string_cache_bounds_entries_and_key_length():
    calls: list[str] = []

    @string_cache(maxsize=2, max_chars=5)
    def upper(value: str, suffix: str = "") -> str:
        calls.append(value)
        if value == "bad":
            raise ValueError(value)
        return value.upper() + suffix

    assert [upper("abc"), upper("abc")] == ["ABC", "ABC"]
    assert calls == ["abc"]
    assert [upper("abcdef"), upper("abcdef")] == ["ABCDEF", "ABCDEF"]
    assert calls == ["abc", "abcdef", "abcdef"]  # too long to be kept
    for _ in range(2):
        with pytest.raises(ValueError, match="bad"):
            upper("bad")
    assert calls.count("bad") == 2  # a refusal is not remembered
    upper("x")
    upper("y")
    upper("abc")
    assert calls[-1] == "abc"  # the least recently used went first
    assert upper("abc", "!") == "ABC!"  # the other arguments are part of the key
    assert upper.cache_info().maxsize == 2  # type: ignore[attr-defined]
