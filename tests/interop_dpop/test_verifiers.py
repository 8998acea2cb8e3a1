"""Verifiers of others checking jotguard's output: ``jose`` (as oidc-provider verifies
proofs), requests-oauth2client and pydpop verify its proofs, and Auth0's
express-oauth2-jwt-bearer, a resource server, its DPoP tokens from a live jotguard."""

from __future__ import annotations

import json
import urllib.parse

import pytest

from backends.dpop import generate_key, jwk_thumbprint, make_proof
from tests.interop_dpop.support import (
    ALGORITHMS,
    RESOURCE,
    TOKEN,
    client_form,
    get,
    node,
    panva_client,
    python_client,
    steps,
)

pytestmark = [pytest.mark.interop, pytest.mark.slow]


def test_python_libraries_verify_jotguard_proofs(python_clients):
    keys = {alg: generate_key(alg) for alg in ALGORITHMS}
    resource_url = RESOURCE + "/things"
    cases = [
        {
            "alg": alg,
            "proof": make_proof(key, "GET", resource_url, access_token=TOKEN),
            "htm": "GET",
            "htu": resource_url,
            "accessToken": TOKEN,
        }
        for alg, key in keys.items()
    ]
    cases.append({**cases[0], "htu": RESOURCE + "/other"})
    results = python_client(python_clients, "verify", cases)
    for result in results[:-1]:
        assert result["requests-oauth2client"] == "ok"
    assert results[0]["pydpop"] == "ok"
    assert results[0]["pydpop_jkt"] == jwk_thumbprint(keys["ES256"])
    assert results[-1]["requests-oauth2client"].startswith("refused")
    assert results[-1]["pydpop"].startswith("refused")


# -- verifiers of others checking jotguard's output -------------------------------------


def test_jose_verifies_jotguard_proofs(node_dir):
    keys = {alg: generate_key(alg) for alg in (*ALGORITHMS, "Ed25519")}
    cases = [
        {
            "proof": make_proof(key, "POST", "https://as.example/token", access_token=TOKEN),
            "htm": "POST",
            "htu": "https://as.example/token",
            "accessToken": TOKEN,
        }
        for key in keys.values()
    ]
    tampered = make_proof(keys["ES256"], "POST", "https://as.example/token", access_token=TOKEN)
    head, payload, signature = tampered.split(".")
    cases.append({**cases[0], "proof": f"{head}.{payload}.{signature[:-6]}AAAAAA"})
    cases.append({**cases[0], "htu": "https://as.example/other"})
    results = node(node_dir, "verify.mjs", cases)
    for (alg, key), result in zip(keys.items(), results, strict=False):
        assert result == {"ok": True, "alg": alg, "jkt": jwk_thumbprint(key)}
    assert not results[-2]["ok"]  # the Node side does check signatures...
    assert results[-1] == {"ok": False, "error": "htu mismatch"}  # ...and claims


async def test_express_oauth2_jwt_bearer_takes_jotguard_dpop_tokens(
    node_dir, plain, jotguard_home, express_api, http
):
    result = panva_client(
        node_dir,
        "ES256",
        plain.url + "oauth/token",
        client_form(jotguard_home),
        express_api + "/test-auth",
        extras=("bearer", "thief"),
    )
    assert steps(result) == [("token", 200), ("resource", 200), ("bearer", 401), ("thief", 401)]
    assert result["token"]["token_type"] == "DPoP"
    assert result["exchanges"][1]["body"] == "This is a protected route."
    bearer, thief = result["exchanges"][2:]
    assert bearer["body"]["error"] == "invalid_token"
    assert "DPoP authentication scheme" in bearer["body"]["error_description"]
    assert thief["body"]["error"] == "invalid_token"
    assert "confirmation mismatch" in thief["body"]["error_description"]
    # The refusals are for the binding: an unbound jotguard token is taken as Bearer.
    form = urllib.parse.urlencode(client_form(jotguard_home))
    unbound = await http.fetch(plain.url + "oauth/token", method="POST", body=form)
    answer = json.loads(unbound.body)
    assert answer["token_type"] == "Bearer"
    taken = await get(http, express_api + "/test-auth", f"Bearer {answer['access_token']}")
    assert taken.code == 200, taken.body
