"""DPoP proof checks (RFC 9449 §4.3), one refusal at a time, through ``verify_proof``.

Every attack proof below is validly signed and wrong in exactly one way, and each
test asserts the refusal's ``reason``: without the check under test the proof
would pass, or be refused for another reason, and the test would fail.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from joserfc.jwk import ECKey, OctKey, RSAKey

from backends.dpop import (
    DPoPKeyMismatch,
    DPoPPolicy,
    InvalidDPoPProof,
    StatelessNonces,
    UseDPoPNonce,
    access_token_hash,
    dpop_challenge,
    generate_key,
    jwk_thumbprint,
    make_proof,
    public_jwk,
    single_proof,
)
from backends.dpop.encoding import b64url_encode
from backends.errors import AuthError, ConfigError
from tests.dpop_support import (
    POLICY,
    TOKEN,
    URL,
    check,
    claims_for,
    encode,
    header_for,
    key_for,
    proof_with,
    refused,
    sign_raw,
)
from webapp.web.errors import error_answer

ALGORITHMS = ["ES256", "EdDSA", "Ed25519", "PS256", "RS256"]


# -- what a good proof gives ------------------------------------------------------------


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_a_good_proof_of_each_algorithm_is_accepted(alg):
    key = key_for(alg)
    now = time.time()
    proof = make_proof(key, "POST", URL, access_token=TOKEN, iat=int(now), jti="j-1", alg=alg)
    verified = check(
        proof, method="POST", now=now, access_token=TOKEN, expected_jkt=jwk_thumbprint(key)
    )
    assert verified.jkt == jwk_thumbprint(key)
    assert (verified.jti, verified.htm, verified.htu, verified.alg) == ("j-1", "POST", URL, alg)
    assert verified.iat == int(now)
    assert verified.expires_at == int(now) + POLICY.proof_lifetime + POLICY.leeway
    assert verified.nonce is None
    assert dict(verified.public_jwk) == public_jwk(key)


def test_without_a_token_ath_is_not_required():
    check(proof_with())


def test_errors_are_auth_errors_with_the_rfc_codes():
    exc = refused(proof_with(header={"typ": "JWT"}), "dpop_typ")
    assert isinstance(exc, AuthError)
    challenge = dpop_challenge(POLICY.advertised, exc)
    assert challenge == (
        'DPoP error="invalid_dpop_proof", '
        'error_description="The DPoP proof type must be dpop+jwt", '
        'algs="ES256 EdDSA PS256 RS256 Ed25519 Ed448"'
    )
    assert dpop_challenge(["ES256"]) == 'DPoP algs="ES256"'


# -- how many proofs, and their shape ---------------------------------------------------


def test_exactly_one_proof_header():
    proof = proof_with()
    assert single_proof([proof]) == proof
    with pytest.raises(InvalidDPoPProof) as none:
        single_proof([])
    assert none.value.reason == "dpop_missing"
    with pytest.raises(InvalidDPoPProof) as two:
        single_proof([proof, proof])
    assert two.value.reason == "dpop_multiple"
    with pytest.raises(InvalidDPoPProof) as joined:
        single_proof([f"{proof}, {proof}"])
    assert joined.value.reason == "dpop_multiple"


def test_the_size_cap_applies_before_parsing():
    proof = proof_with(claims={"padding": "x" * 9000})
    refused(proof, "dpop_malformed")
    check(proof, policy=DPoPPolicy(max_proof_bytes=16 * 1024))  # only the cap refused it


@pytest.mark.parametrize(
    "mangle",
    [
        lambda p: p.rsplit(".", 1)[0],  # two parts
        lambda p: p + ".x",  # four parts
        lambda p: "." + p.split(".", 1)[1],  # empty header
        lambda p: p.replace(".", ".é", 1),  # not ASCII
    ],
)
def test_not_a_compact_jws(mangle):
    refused(mangle(proof_with()), "dpop_malformed")


def _resigned(header_bytes: bytes, claims_bytes: bytes, alg: str = "ES256") -> str:
    return sign_raw(header_bytes, claims_bytes, key_for(alg), alg)


def test_json_must_be_utf8():
    header = json.dumps(header_for(key_for("ES256"), "ES256"))
    claims = json.dumps(claims_for()).encode()
    refused(_resigned(header.encode("utf-16"), claims), "dpop_malformed")
    refused(_resigned(b"\xef\xbb\xbf" + header.encode(), claims), "dpop_malformed")  # BOM
    check(_resigned(header.encode(), claims))


def test_duplicate_members_are_refused():
    # A lenient parser takes the last "htm" and accepts; another takes the first.
    claims = json.dumps(claims_for(method="POST"))[:-1] + ', "htm": "GET"}'
    header = json.dumps(header_for(key_for("ES256"), "ES256")).encode()
    refused(_resigned(header, claims.encode()), "dpop_malformed")


def test_non_json_constants_are_refused():
    claims = json.dumps(claims_for()).replace('"iat": ', '"iat": NaN, "x": ', 1)
    header = json.dumps(header_for(key_for("ES256"), "ES256")).encode()
    refused(_resigned(header, claims.encode()), "dpop_malformed")


def test_padded_base64url_is_refused():
    head, payload, signature = _resigned_with_length(1).split(".")
    assert len(head) % 4 == 2
    refused(f"{head}==.{payload}.{signature}", "dpop_malformed")
    refused(f"{head[:4]}*{head[4:]}.{payload}.{signature}", "dpop_malformed")  # decoders skip "*"


def _resigned_with_length(remainder: int) -> str:
    """A good proof whose header's byte length is ``remainder`` modulo 3."""
    header = json.dumps(header_for(key_for("ES256"), "ES256")).encode()
    while len(header) % 3 != remainder:
        header += b" "
    return _resigned(header, json.dumps(claims_for()).encode())


def test_non_canonical_base64url_is_refused():
    # A 2-character tail carries 8 bits in 12: another last character with the same
    # first 2 bits decodes to the same bytes. Only the canonical spelling is accepted.
    good = _resigned_with_length(1)
    check(good)
    head, payload, signature = good.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    alias = head[:-1] + alphabet[alphabet.index(head[-1]) + 1]
    assert base64.urlsafe_b64decode(alias + "==") == base64.urlsafe_b64decode(head + "==")
    refused(f"{alias}.{payload}.{signature}", "dpop_malformed")


def test_header_and_payload_must_be_objects():
    header = json.dumps(header_for(key_for("ES256"), "ES256")).encode()
    refused(_resigned(header, b"[1, 2]"), "dpop_malformed")
    refused(_resigned(b'"dpop+jwt"', json.dumps(claims_for()).encode()), "dpop_malformed")


# -- the header -------------------------------------------------------------------------


@pytest.mark.parametrize("typ", [None, "JWT", "at+jwt", "dpop", 1])
def test_typ_must_be_dpop_jwt(typ):
    if typ is None:
        refused(proof_with(drop_header=("typ",)), "dpop_typ")
    else:
        refused(proof_with(header={"typ": typ}), "dpop_typ")


@pytest.mark.parametrize("typ", ["DPoP+JWT", "application/dpop+jwt"])
def test_typ_is_a_media_type_compared_without_case(typ):
    check(proof_with(header={"typ": typ}))


def test_alg_none_is_refused():
    header = encode(header_for(key_for("ES256"), "none"))
    refused(f"{header}.{encode(claims_for())}.", "dpop_malformed")  # empty signature part
    refused(f"{header}.{encode(claims_for())}.AA", "dpop_alg")


def test_symmetric_algorithms_are_refused():
    secret = OctKey.generate_key(256)
    header = {"typ": "dpop+jwt", "alg": "HS256", "jwk": secret.as_dict(private=False)}
    refused(sign_raw(header, claims_for(), secret, "HS256"), "dpop_alg")


def test_an_algorithm_outside_the_allow_list_is_refused():
    policy = DPoPPolicy(algorithms=("ES256",))
    refused(proof_with("RS256"), "dpop_alg", policy=policy)
    refused(proof_with("EdDSA"), "dpop_alg", policy=policy)
    check(proof_with("ES256"), policy=policy)
    rs512 = sign_raw(header_for(key_for("RS256"), "RS512"), claims_for(), key_for("RS256"), "RS512")
    refused(rs512, "dpop_alg")
    check(rs512, policy=DPoPPolicy(algorithms=("RS512",)))


def test_eddsa_allows_its_fully_specified_name():
    check(proof_with("Ed25519"), policy=DPoPPolicy(algorithms=("EdDSA",)))
    refused(proof_with("Ed25519"), "dpop_alg", policy=DPoPPolicy(algorithms=("ES256",)))


@pytest.mark.parametrize("name", ["jku", "x5u", "x5c", "crit", "b64"])
def test_headers_that_name_other_keys_or_rules_are_refused(name):
    value: Any = {"jku": "https://evil.example/jwks", "x5u": "https://evil.example/c"}.get(
        name, ["x"]
    )
    if name == "b64":
        value = False
    refused(proof_with(header={name: value}), "dpop_header")


def test_policy_refuses_unknown_or_symmetric_algorithms():
    for algorithms in [("HS256",), ("none",), ("ES256", "nope"), ()]:
        with pytest.raises(ConfigError):
            DPoPPolicy(algorithms=algorithms)


# -- the jwk header ---------------------------------------------------------------------


def test_jwk_is_required():
    refused(proof_with(drop_header=("jwk",)), "dpop_jwk")
    refused(proof_with(header={"jwk": "a key"}), "dpop_jwk")


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256"])
def test_a_private_key_in_jwk_is_refused(alg):
    key = key_for(alg)
    private = key.as_dict(private=True)
    refused(sign_raw(header_for(key, alg, jwk=private), claims_for(), key, alg), "dpop_jwk")


def test_the_key_type_must_fit_the_algorithm():
    ec = key_for("ES256")
    # An EC key named as RS256 or EdDSA: refused before any signature check.
    for alg in ("RS256", "EdDSA"):
        proof = sign_raw(header_for(ec, alg), claims_for(), key_for(alg), alg)
        refused(proof, "dpop_jwk", match=f"is of type 'EC'; {alg} needs")


def test_the_curve_must_fit_the_algorithm():
    p384 = ECKey.generate_key("P-384", private=True)
    header = header_for(p384, "ES256")
    refused(sign_raw(header, claims_for(), key_for("ES256"), "ES256"), "dpop_jwk")
    ed = key_for("EdDSA")
    assert public_jwk(ed)["crv"] == "Ed25519"
    ed448 = {**public_jwk(ed), "crv": "Ed448"}
    refused(sign_raw(header_for(ed, "Ed25519", jwk=ed448), claims_for(), ed, "Ed25519"), "dpop_jwk")


@pytest.mark.filterwarnings("ignore:Key size should be:joserfc.errors.SecurityWarning")
def test_rsa_keys_under_2048_bits_are_refused():
    small = RSAKey.generate_key(1024, private=True)
    refused(sign_raw(header_for(small, "RS256"), claims_for(), small, "RS256"), "dpop_jwk")


def test_rsa_keys_over_4096_bits_and_huge_exponents_are_refused():
    key = key_for("RS256")
    jwk = public_jwk(key)
    huge_n = {**jwk, "n": b64url_encode(b"\xff" * 513)}
    refused(sign_raw(header_for(key, "RS256", jwk=huge_n), claims_for(), key, "RS256"), "dpop_jwk")
    huge_e = {**jwk, "e": b64url_encode(b"\x01" * 5)}
    refused(sign_raw(header_for(key, "RS256", jwk=huge_e), claims_for(), key, "RS256"), "dpop_jwk")


def test_non_minimal_or_wrong_length_members_are_refused():
    rsa = key_for("RS256")
    jwk = public_jwk(rsa)
    padded_n = {**jwk, "n": b64url_encode(b"\x00" + base64.urlsafe_b64decode(jwk["n"] + "=="))}
    refused(
        sign_raw(header_for(rsa, "RS256", jwk=padded_n), claims_for(), rsa, "RS256"), "dpop_jwk"
    )
    ec = key_for("ES256")
    ec_jwk = public_jwk(ec)
    # The same point with x padded to 33 bytes: another thumbprint for the same key.
    long_x = {**ec_jwk, "x": b64url_encode(b"\x00" + base64.urlsafe_b64decode(ec_jwk["x"] + "="))}
    proof = sign_raw(header_for(ec, "ES256", jwk=long_x), claims_for(), ec, "ES256")
    refused(proof, "dpop_jwk", match="wrong length")


def test_a_point_off_the_curve_is_refused():
    ec = key_for("ES256")
    jwk = public_jwk(ec)
    y = bytearray(base64.urlsafe_b64decode(jwk["y"] + "="))
    y[-1] ^= 1
    off_curve = {**jwk, "y": b64url_encode(bytes(y))}
    refused(sign_raw(header_for(ec, "ES256", jwk=off_curve), claims_for(), ec, "ES256"), "dpop_jwk")


@pytest.mark.parametrize(
    "extra",
    [{"use": "enc"}, {"key_ops": ["sign"]}, {"key_ops": "verify"}, {"alg": "ES384"}],
)
def test_jwk_members_that_say_it_is_not_this_signature_key(extra):
    ec = key_for("ES256")
    jwk = {**public_jwk(ec), **extra}
    refused(sign_raw(header_for(ec, "ES256", jwk=jwk), claims_for(), ec, "ES256"), "dpop_jwk")


def test_harmless_jwk_members_are_ignored():
    ec = key_for("ES256")
    jwk = {**public_jwk(ec), "use": "sig", "key_ops": ["verify"], "alg": "ES256", "kid": "k1"}
    verified = check(sign_raw(header_for(ec, "ES256", jwk=jwk), claims_for(), ec, "ES256"))
    assert verified.jkt == jwk_thumbprint(ec)  # kid and friends are not in the thumbprint


# -- the signature ----------------------------------------------------------------------


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_a_proof_signed_by_another_key_than_its_jwk_is_refused(alg):
    if alg in {"PS256", "RS256"}:
        impostor = key_for("RS256" if alg == "PS256" else "PS256")  # another RSA key
    else:
        impostor = generate_key(alg)
    proof = sign_raw(header_for(key_for(alg), alg), claims_for(), impostor, alg)
    refused(proof, "dpop_signature")


def test_a_tampered_payload_is_refused():
    proof = proof_with()
    head, _, signature = proof.split(".")
    forged = encode(claims_for(jti="another"))
    refused(f"{head}.{forged}.{signature}", "dpop_signature")


def test_a_signature_of_the_wrong_shape_is_refused():
    head, payload, signature = proof_with().split(".")
    refused(f"{head}.{payload}.{signature[:-4]}", "dpop_signature")
    refused(f"{head}.{payload}.{signature}AAAA", "dpop_signature")
    refused(f"{head}.{payload}.***", "dpop_signature")


# -- the claims -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["jti", "htm", "htu"])
def test_required_string_claims(name):
    refused(proof_with(drop_claims=(name,)), "dpop_claims")
    refused(proof_with(claims={name: ""}), "dpop_claims")
    refused(proof_with(claims={name: 7}), "dpop_claims")


def test_jti_length_is_bounded():
    refused(proof_with(claims={"jti": "j" * 257}), "dpop_claims")
    check(proof_with(claims={"jti": "j" * 256}))


@pytest.mark.parametrize("iat", [None, "1700000000", True, [1]])
def test_iat_must_be_a_number(iat):
    if iat is None:
        refused(proof_with(drop_claims=("iat",)), "dpop_claims")
    else:
        refused(proof_with(claims={"iat": iat}), "dpop_claims")


def test_an_infinite_iat_is_refused():
    # 1e400 is no JSON number a strict parser reads (strict_json, as for tokens).
    claims = json.dumps(claims_for()).replace('"iat": ', '"iat": 1e400, "was": ', 1)
    header = json.dumps(header_for(key_for("ES256"), "ES256")).encode()
    refused(_resigned(header, claims.encode()), "dpop_malformed")


@pytest.mark.parametrize("method", ["POST", "get", "GET "])
def test_htm_must_equal_the_method(method):
    refused(proof_with(claims={"htm": method}), "dpop_htm")


@pytest.mark.parametrize(
    "htu",
    [
        "https://api.example/other",
        "https://api.example/things/",
        "https://evil.example/things",
        "http://api.example/things",
        "https://api.example:8443/things",
        "https://user@api.example/things",
        "api.example/things",
        "/things",
    ],
)
def test_htu_must_name_the_request_uri(htu):
    refused(proof_with(claims={"htu": htu}), "dpop_htu")


@pytest.mark.parametrize(
    "htu",
    [
        URL + "?page=2",
        URL + "#top",
        "HTTPS://API.Example:443/things",
        "https://api.example/%74hings",
        "https://api.example/a/../things",
    ],
)
def test_htu_is_compared_in_normal_form_without_query(htu):
    check(proof_with(claims={"htu": htu}), url=URL + "?q=1")


def test_iat_window_both_ways():
    now = time.time()
    oldest = now - POLICY.proof_lifetime - POLICY.leeway
    check(proof_with(claims={"iat": oldest + 1}), now=now)
    refused(proof_with(claims={"iat": oldest - 1}), "dpop_iat", now=now)
    check(proof_with(claims={"iat": now + POLICY.leeway - 1}), now=now)
    refused(proof_with(claims={"iat": now + POLICY.leeway + 1}), "dpop_iat", now=now)
    refused(proof_with(claims={"iat": int(now) - 600}), "dpop_iat", now=now)
    refused(proof_with(claims={"iat": int(now) + 600}), "dpop_iat", now=now)


def test_the_proof_lifetime_is_the_policys():
    now = time.time()
    proof = proof_with(claims={"iat": now - 200})
    refused(proof, "dpop_iat", now=now)
    check(proof, now=now, policy=DPoPPolicy(proof_lifetime=300))


def test_ath_is_required_with_a_token_and_must_hash_it():
    refused(proof_with(), "dpop_ath", access_token=TOKEN)
    refused(
        proof_with(claims={"ath": access_token_hash("another")}), "dpop_ath", access_token=TOKEN
    )
    refused(proof_with(claims={"ath": 1}), "dpop_ath", access_token=TOKEN)
    check(proof_with(claims={"ath": access_token_hash(TOKEN)}), access_token=TOKEN)


def test_ath_is_base64url_sha256_of_the_token():
    # RFC 9449 §7.1's example: the token and its ath.
    token = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
    assert access_token_hash(token) == "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"


def test_a_proof_by_another_key_than_the_tokens_binding():
    proof = proof_with(claims={"ath": access_token_hash(TOKEN)})
    with pytest.raises(DPoPKeyMismatch) as caught:
        check(proof, access_token=TOKEN, expected_jkt=jwk_thumbprint(key_for("EdDSA")))
    # The token is genuine and the proof fails: invalid_dpop_proof, not invalid_token.
    assert caught.value.error == "invalid_dpop_proof"
    assert caught.value.reason == "dpop_key_mismatch"
    check(proof, access_token=TOKEN, expected_jkt=jwk_thumbprint(key_for("ES256")))


# -- server nonces ----------------------------------------------------------------------


def test_nonce_required_when_the_server_issues_them():
    nonces = StatelessNonces(b"s" * 32)
    now = time.time()
    with pytest.raises(UseDPoPNonce) as missing:
        check(proof_with(), nonces=nonces, now=now)
    assert missing.value.error == "use_dpop_nonce"
    assert error_answer(missing.value).status == 401
    assert nonces.check(missing.value.nonce, now)
    with pytest.raises(UseDPoPNonce):
        check(proof_with(claims={"nonce": "made-up"}), nonces=nonces, now=now)
    stale = nonces.issue(now - 3 * nonces.step)
    with pytest.raises(UseDPoPNonce):
        check(proof_with(claims={"nonce": stale}), nonces=nonces, now=now)
    verified = check(proof_with(claims={"nonce": nonces.issue(now)}), nonces=nonces, now=now)
    assert verified.nonce == nonces.issue(now)


def test_a_nonce_must_be_a_string():
    refused(proof_with(claims={"nonce": 5}), "dpop_claims")
    refused(proof_with(claims={"nonce": ""}), "dpop_claims")


def test_a_bad_proof_is_refused_as_bad_even_in_nonce_mode():
    nonces = StatelessNonces(b"s" * 32)
    refused(proof_with(claims={"htm": "POST"}), "dpop_htm", nonces=nonces)
