"""oidc-provider's DPoP-bound JWT access tokens at a live jotguard (a remote issuer of its
configuration), for panva's proofs and jotguard's; and jotguard's proofs at oidc-provider's
token endpoint."""

from __future__ import annotations

import json
import time

import pytest

from backends.auth.compact import parse_compact
from backends.dpop import generate_key, jwk_thumbprint, make_proof
from tests.interop_dpop.support import (
    ALGORITHMS,
    cnf_jkt,
    dpop_refusal,
    get,
    panva_client,
    provider_form,
    steps,
    token_request,
)

pytestmark = [pytest.mark.interop, pytest.mark.slow]


def test_an_oidc_provider_token_for_a_panva_key_is_taken_by_jotguard(
    node_dir, oidc_provider, plain
):
    misuses = ("replay", "bearer", "thief")
    result = panva_client(
        node_dir,
        "ES256",
        oidc_provider + "/token",
        provider_form(),
        plain.url + "test-auth",
        extras=misuses,
    )
    assert result["token"]["token_type"] == "DPoP", result
    assert cnf_jkt(result["token"]["access_token"]) == result["jkt"]
    assert steps(result) == [("token", 200), ("resource", 200), *((m, 401) for m in misuses)]
    replayed, bearer, thief = result["exchanges"][2:]
    assert "used before" in dpop_refusal(replayed, "invalid_dpop_proof")
    dpop_refusal(bearer, "invalid_token")
    assert "bound to" in dpop_refusal(thief, "invalid_dpop_proof")


@pytest.mark.parametrize("alg", ALGORITHMS)
async def test_oidc_provider_binds_its_jwt_to_a_jotguard_proof(oidc_provider, plain, http, alg):
    key = generate_key(alg)
    status, body, _ = await token_request(
        http, oidc_provider, make_proof(key, "POST", oidc_provider + "/token")
    )
    assert status == 200, body
    assert body["token_type"] == "DPoP"
    token = body["access_token"]
    assert cnf_jkt(token) == jwk_thumbprint(key)
    url = plain.url + "test-auth"
    proof = make_proof(key, "GET", url, access_token=token)
    response = await get(http, url, f"DPoP {token}", proof)
    assert response.code == 200, response.body


async def test_an_issuer_that_requires_dpop_has_its_unbound_tokens_refused(
    oidc_provider, plain, strict, http
):
    status, body, _ = await token_request(http, oidc_provider, None)
    assert (status, body["token_type"]) == (200, "Bearer"), body
    assert "cnf" not in parse_compact(body["access_token"]).claims
    bearer = f"Bearer {body['access_token']}"
    # The same token where the issuer's entry leaves DPoP "allowed" (the default)...
    assert (await get(http, plain.url + "test-auth", bearer)).code == 200
    # ...and where it says "required".
    refused = await get(http, strict.url + "test-auth", bearer)
    assert refused.code == 401, refused.body
    assert json.loads(refused.body)["error"] == "invalid_token"
    assert refused.headers["WWW-Authenticate"].startswith('DPoP error="invalid_token"')


async def test_oidc_provider_refuses_a_jotguard_proof_for_another_request(oidc_provider, http):
    key = generate_key("ES256")
    for proof, error in (
        (make_proof(key, "POST", oidc_provider + "/other"), "invalid_dpop_proof"),
        (make_proof(key, "GET", oidc_provider + "/token"), "invalid_dpop_proof"),
        # A stale proof: a provider that has nonces asks for one instead.
        (
            make_proof(key, "POST", oidc_provider + "/token", iat=time.time() - 3600),
            "use_dpop_nonce",
        ),
    ):
        status, body, _ = await token_request(http, oidc_provider, proof)
        assert (status, body["error"]) == (400, error)


async def test_oidc_provider_nonces_with_jotguard_proofs(oidc_provider, http):
    key = generate_key("ES256")
    ask = {"x-test-require-nonce": "1"}
    status, body, headers = await token_request(
        http, oidc_provider, make_proof(key, "POST", oidc_provider + "/token"), **ask
    )
    assert (status, body["error"]) == (400, "use_dpop_nonce")
    nonce = headers["DPoP-Nonce"]
    proof = make_proof(key, "POST", oidc_provider + "/token", nonce=nonce)
    status, body, _ = await token_request(http, oidc_provider, proof, **ask)
    assert status == 200, body
    assert body["token_type"] == "DPoP"
