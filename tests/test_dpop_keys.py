"""RFC 7638 thumbprints, the RFC 9449 examples, and the client helper's keys and proofs."""

from __future__ import annotations

import json
import time

import pytest

from backends.dpop import (
    DPoPPolicy,
    InvalidDPoPProof,
    generate_key,
    jwk_thumbprint,
    make_proof,
    public_jwk,
    thumbprint,
    verify_proof,
)
from backends.dpop.encoding import b64url_decode

# RFC 7638 §3.1.
RFC7638_KEY = {
    "kty": "RSA",
    "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tS"
        "oc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65Y"
        "GjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdk"
        "t-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    ),
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}
RFC9449_KEY = {
    "kty": "EC",
    "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
    "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA",
    "crv": "P-256",
}
RFC9449_JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
_HEADER = (
    "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNo"
    "UklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VE"
    "RWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19"
)
# RFC 9449 §4.1 (a token request) and §7.1 (a resource request with its token).
RFC9449_TOKEN_PROOF = (
    _HEADER + ".eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVy"
    "LmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUv"
    "wnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg"
)
RFC9449_RESOURCE_PROOF = (
    _HEADER + ".eyJqdGkiOiJlMWozVl9iS2ljOC1MQUVCIiwiaHRtIjoiR0VUIiwiaHR1IjoiaHR0cHM6Ly9yZXNvdXJj"
    "ZS5leGFtcGxlLm9yZy9wcm90ZWN0ZWRyZXNvdXJjZSIsImlhdCI6MTU2MjI2MjYxOCwiYXRoIjoiZlVIeU8ycjJaM0Ra"
    "NTNFc05yV0JiMHhXWG9hTnk1OUlpS0NBcWtzbVFFbyJ9.2oW9RP35yRqzhrtNP86L-Ey71EOptxRimPPToA1plemAgR6px"
    "HF8y6-yqyVnmcw6Fy1dqd-jfxSYoMxhAJpLjA"
)
RFC9449_TOKEN = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"


def test_rfc7638_example_thumbprint():
    assert thumbprint(RFC7638_KEY) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_rfc8037_okp_thumbprint():
    key = {"crv": "Ed25519", "kty": "OKP", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    assert thumbprint(key) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_rfc9449_ec_thumbprint():
    assert thumbprint(RFC9449_KEY) == RFC9449_JKT
    assert thumbprint({**RFC9449_KEY, "kid": "x", "use": "sig", "d": "ignored"}) == RFC9449_JKT


def test_thumbprints_need_their_members():
    with pytest.raises(ValueError, match="lacks"):
        thumbprint({"kty": "EC", "crv": "P-256", "x": "AA"})
    with pytest.raises(ValueError, match="no thumbprint"):
        thumbprint({"kty": "oct", "k": "AA"})


def test_rfc9449_example_proofs_verify():
    token_request = verify_proof(
        RFC9449_TOKEN_PROOF,
        method="POST",
        url="https://server.example.com/token",
        policy=DPoPPolicy(),
        now=1562262620,
    )
    assert (token_request.jkt, token_request.jti) == (RFC9449_JKT, "-BwC3ESc6acc2lTc")
    resource = verify_proof(
        RFC9449_RESOURCE_PROOF,
        method="GET",
        url="https://resource.example.org/protectedresource",
        policy=DPoPPolicy(),
        now=1562262620,
        access_token=RFC9449_TOKEN,
        expected_jkt=RFC9449_JKT,
    )
    assert resource.jti == "e1j3V_bKic8-LAEB"
    with pytest.raises(InvalidDPoPProof):
        verify_proof(
            RFC9449_RESOURCE_PROOF,
            method="GET",
            url="https://resource.example.org/protectedresource",
            policy=DPoPPolicy(),
            now=1562262620,
            access_token="another token",
        )


@pytest.mark.parametrize("alg", ["ES256", "ES384", "EdDSA", "Ed25519", "PS256", "RS256"])
def test_generated_keys_make_proofs_of_their_algorithm(alg):
    key = generate_key(alg)
    proof = make_proof(key, "PATCH", "https://api.example/x?q=1#f", nonce="n0", jti="j", iat=100)
    header, claims = (json.loads(b64url_decode(part)) for part in proof.split(".")[:2])
    assert header == {"typ": "dpop+jwt", "alg": alg, "jwk": public_jwk(key)}
    assert claims == {
        "jti": "j",
        "htm": "PATCH",
        "htu": "https://api.example/x",
        "iat": 100,
        "nonce": "n0",
    }
    assert "d" not in header["jwk"]
    assert jwk_thumbprint(key) == thumbprint(key.as_dict(private=True))


def test_make_proof_takes_a_jwk_dict_and_an_explicit_algorithm():
    key = generate_key("RS256")
    as_dict = {k: v for k, v in key.as_dict(private=True).items() if k != "alg"}
    proof = make_proof(as_dict, "GET", "https://api.example/", alg="PS256", access_token="t")
    verified = verify_proof(
        proof,
        method="GET",
        url="https://api.example/",
        policy=DPoPPolicy(),
        now=time.time(),
        access_token="t",
    )
    assert (verified.alg, verified.jkt) == ("PS256", jwk_thumbprint(key))


def test_fresh_proofs_have_fresh_ids_and_the_current_time():
    key = generate_key()
    first, second = (make_proof(key, "GET", "https://api.example/") for _ in range(2))
    claims = [json.loads(b64url_decode(p.split(".")[1])) for p in (first, second)]
    assert claims[0]["jti"] != claims[1]["jti"]
    assert len(claims[0]["jti"]) >= 32
    assert abs(claims[0]["iat"] - time.time()) < 5


def test_generate_key_refuses_what_is_no_proof_algorithm():
    with pytest.raises(ValueError, match="not a DPoP proof algorithm"):
        generate_key("HS256")
