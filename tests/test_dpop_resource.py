"""DPoP on the protected routes (RFC 9449 §7), through HTTP on `jotguard serve`'s defaults.

Every refusal of a proof is checked with a proof that is right in every other way, so
the check under test is the only one that can refuse it.
"""

from __future__ import annotations

import json
import time

import pytest
from joserfc.jwk import OctKey
from tornado.httputil import HTTPHeaders

from backends.dpop import access_token_hash, generate_key, jwk_thumbprint, make_proof, public_jwk
from tests.dpop_http import ALGS, DPoPClient, bound_token, dpop_headers, refused_with
from tests.dpop_support import claims_for, key_for, sign_raw


@pytest.fixture
def token(dpop_client, services):
    return bound_token(services, dpop_client.key)


async def test_a_bound_token_with_a_fresh_proof_passes(dpop_client, token):
    response = await dpop_client.send("/test-auth", token)
    assert response.code == 200, response.body
    assert response.body == b"This is a protected route."
    assert "DPoP-Nonce" not in response.headers  # nonces are off by default


async def test_every_algorithm_of_the_default_policy_passes(fetch, base_url, services):
    for alg in ("ES256", "EdDSA", "PS256", "RS256"):
        key = key_for(alg)
        response = await DPoPClient(fetch, base_url, key).send(
            "/test-auth", bound_token(services, key)
        )
        assert response.code == 200, (alg, response.body)


async def test_the_same_proof_twice_is_a_replay(dpop_client, token):
    proof = dpop_client.proof("/test-auth", token)
    assert (await dpop_client.send("/test-auth", token, proof=proof)).code == 200
    description = refused_with(
        await dpop_client.send("/test-auth", token, proof=proof), "invalid_dpop_proof"
    )
    assert "used before" in description


async def test_the_bound_token_as_a_bearer_token_is_refused(fetch, dpop_client, token):
    # RFC 9449 §7.2: whoever holds a copy could send it so. Once as DPoP first, so the
    # refusal also comes from the verified-token cache's principal.
    assert (await dpop_client.send("/test-auth", token)).code == 200
    response = await fetch("/test-auth", token=token)
    assert "DPoP" in refused_with(response, "invalid_token")


async def test_no_proof(dpop_client, token):
    response = await dpop_client.fetch("/test-auth", headers=dpop_headers(None, token))
    assert "required" in refused_with(response, "invalid_dpop_proof")


async def test_two_proofs(dpop_client, token):
    proofs = [dpop_client.proof("/test-auth", token), dpop_client.proof("/test-auth", token)]
    for headers in (
        dpop_headers(", ".join(proofs), token),
        [("Authorization", f"DPoP {token}"), ("DPoP", proofs[0]), ("DPoP", proofs[1])],
    ):
        sent = HTTPHeaders()
        for name, value in headers.items() if isinstance(headers, dict) else headers:
            sent.add(name, value)
        response = await dpop_client.fetch("/test-auth", headers=sent)
        assert "Exactly one" in refused_with(response, "invalid_dpop_proof")


async def test_wrong_htm(dpop_client, token):
    proof = dpop_client.proof("/test-auth", token, method="POST")
    response = await dpop_client.send("/test-auth", token, proof=proof)
    assert "htm" in refused_with(response, "invalid_dpop_proof")


async def test_wrong_htu(dpop_client, token, base_url):
    for url in (
        base_url + "/test",
        "http://elsewhere.example/test-auth",
        "https" + base_url[4:] + "/test-auth",
    ):
        proof = make_proof(dpop_client.key, "GET", url, access_token=token)
        response = await dpop_client.send("/test-auth", token, proof=proof)
        assert "htu" in refused_with(response, "invalid_dpop_proof"), url


async def test_ath_of_another_token(dpop_client, token, services):
    other = bound_token(services, dpop_client.key, subject="bob")
    proof = dpop_client.proof("/test-auth", other)
    response = await dpop_client.send("/test-auth", token, proof=proof)
    assert "ath" in refused_with(response, "invalid_dpop_proof")


async def test_no_ath(dpop_client, token, base_url):
    proof = make_proof(dpop_client.key, "GET", base_url + "/test-auth")
    response = await dpop_client.send("/test-auth", token, proof=proof)
    assert "ath" in refused_with(response, "invalid_dpop_proof")


async def test_a_proof_by_another_key(fetch, base_url, token):
    thief = DPoPClient(fetch, base_url, key_for("EdDSA"))
    response = await thief.send("/test-auth", token)
    assert "bound to" in refused_with(response, "invalid_dpop_proof")


@pytest.mark.parametrize("offset", [-600, 600], ids=["10 minutes old", "10 minutes ahead"])
async def test_iat_far_from_now(dpop_client, token, base_url, offset):
    proof = make_proof(
        dpop_client.key,
        "GET",
        base_url + "/test-auth",
        access_token=token,
        iat=time.time() + offset,
    )
    response = await dpop_client.send("/test-auth", token, proof=proof)
    description = refused_with(response, "invalid_dpop_proof")
    assert ("too old" if offset < 0 else "in the future") in description


def _signed(key, base_url, token, *, header=None, alg="ES256", signing_key=None):
    """A proof by ``key`` right in every way but ``header`` (and ``signing_key``)."""
    full_header = {
        "typ": "dpop+jwt",
        "alg": alg,
        "jwk": public_jwk(key),
        **(header or {}),
    }
    claims = {
        "jti": f"jti-{time.monotonic_ns()}",
        "htm": "GET",
        "htu": base_url + "/test-auth",
        "iat": int(time.time()),
        "ath": access_token_hash(token),
    }
    return sign_raw(full_header, claims, signing_key or key, alg)


async def test_typ_jwt(dpop_client, token, base_url):
    proof = _signed(dpop_client.key, base_url, token, header={"typ": "JWT"})
    assert "typ" in refused_with(
        await dpop_client.send("/test-auth", token, proof=proof), "invalid_dpop_proof"
    )


async def test_a_private_key_in_jwk(dpop_client, token, base_url):
    proof = _signed(
        dpop_client.key, base_url, token, header={"jwk": dpop_client.key.as_dict(private=True)}
    )
    assert "private" in refused_with(
        await dpop_client.send("/test-auth", token, proof=proof), "invalid_dpop_proof"
    )


async def test_an_hs256_proof(dpop_client, token, base_url):
    secret = OctKey.import_key(b"k" * 32)
    proof = _signed(dpop_client.key, base_url, token, alg="HS256", signing_key=secret)
    description = refused_with(
        await dpop_client.send("/test-auth", token, proof=proof), "invalid_dpop_proof"
    )
    assert "algorithm" in description


async def test_a_proof_signed_by_another_key_than_its_jwk(dpop_client, token, base_url):
    proof = _signed(dpop_client.key, base_url, token, signing_key=generate_key("ES256"))
    assert "signature" in refused_with(
        await dpop_client.send("/test-auth", token, proof=proof), "invalid_dpop_proof"
    )


async def test_htu_is_compared_without_the_query(dpop_client, token, base_url):
    # The request has a query its proof does not name, and a proof naming one is fine too.
    assert (await dpop_client.send("/test-auth?page=2", token)).code == 200
    proof = make_proof(dpop_client.key, "GET", base_url + "/test-auth", access_token=token)
    assert (await dpop_client.send("/test-auth?x=1&y=2", token, proof=proof)).code == 200
    claims = claims_for(url=base_url + "/test-auth?other=query", ath=access_token_hash(token))
    claims["jti"] = "with-a-query"
    proof = sign_raw(
        {"typ": "dpop+jwt", "alg": "ES256", "jwk": public_jwk(dpop_client.key)},
        claims,
        dpop_client.key,
        "ES256",
    )
    assert (await dpop_client.send("/test-auth", token, proof=proof)).code == 200


async def test_an_unauthenticated_request_is_offered_both_schemes(fetch):
    response = await fetch("/test-auth")
    assert response.code == 401
    assert response.headers["WWW-Authenticate"] == f'Bearer realm="jotguard", DPoP algs="{ALGS}"'


async def test_an_unbound_token_sent_as_dpop_is_refused(dpop_client, issue_token):
    unbound = issue_token("alice")
    response = await dpop_client.send("/test-auth", unbound)
    assert "not bound" in refused_with(response, "invalid_token")


async def test_a_bad_token_sent_as_dpop_gets_the_dpop_challenge(dpop_client, token):
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    response = await dpop_client.send("/test-auth", forged)
    refused_with(response, "invalid_token")


async def test_unbound_bearer_tokens_pass_as_before(fetch, issue_token):
    response = await fetch("/test-auth", token=issue_token("alice"))
    assert response.code == 200
    assert "DPoP-Nonce" not in response.headers


@pytest.mark.parametrize(
    "cnf",
    [
        {"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"},
        {},
        "jkt",
        {"jkt": 7},
        {"jkt": ""},
        None,
    ],
    ids=["mTLS binding", "empty", "a string", "jkt a number", "jkt empty", "null"],
)
async def test_a_malformed_cnf_is_an_invalid_token(fetch, dpop_client, services, cnf):
    claims = services.issuer.claims_for("alice")
    claims["cnf"] = cnf
    token = services.issuer.sign(claims).token
    bearer = await fetch("/test-auth", token=token)
    assert bearer.code == 401
    assert json.loads(bearer.body)["error"] == "invalid_token"
    assert "cnf" in json.loads(bearer.body)["error_description"]
    refused_with(await dpop_client.send("/test-auth", token), "invalid_token")


async def test_the_scheme_name_is_case_insensitive(dpop_client, token):
    proof = dpop_client.proof("/test-auth", token)
    response = await dpop_client.fetch(
        "/test-auth", headers={"Authorization": f"dpop {token}", "DPoP": proof}
    )
    assert response.code == 200


async def test_a_scope_refusal_under_dpop_is_a_dpop_challenge(dpop_client, services):
    token = bound_token(services, dpop_client.key, scopes=["read:catchphrases"])
    response = await dpop_client.send(
        "/api/catchphrases",
        token,
        method="POST",
        body="{}",
        headers={"Content-Type": "application/json"},
    )
    assert response.code == 403
    assert response.headers["WWW-Authenticate"] == (
        'DPoP error="insufficient_scope", error_description="The token lacks the required'
        f' scope (all of: write:catchphrases)", scope="write:catchphrases", algs="{ALGS}"'
    )


async def test_the_principal_carries_the_binding(dpop_client, services):
    token = bound_token(services, dpop_client.key, scopes=["read:catchphrases"])
    assert (await dpop_client.send("/api/catchphrases", token)).code == 200
    principal = services.authenticator.verified_before(token)
    assert principal is not None
    assert principal.jkt == jwk_thumbprint(dpop_client.key)
