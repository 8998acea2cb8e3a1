"""Others' DPoP clients of a live jotguard: panva's ``dpop`` (Node's fetch), and the Python
libraries requests-oauth2client and pydpop, each doing its own HTTP and nonce handling."""

from __future__ import annotations

import json

import pytest

from tests.interop_dpop.support import (
    ALGORITHMS,
    client_form,
    cnf_jkt,
    dpop_refusal,
    get,
    panva_client,
    python_client,
    steps,
)
from tests.live import LiveServer

pytestmark = [pytest.mark.interop, pytest.mark.slow]


MISUSES = ("replay", "bearer", "thief", "elsewhere", "otherToken")


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "Ed25519", "PS256", "RS256"])
def test_panva_client_gets_a_dpop_token_and_calls_the_api(node_dir, plain, jotguard_home, alg):
    result = panva_client(
        node_dir,
        alg,
        plain.url + "oauth/token",
        client_form(jotguard_home),
        plain.url + "test-auth",
        extras=MISUSES,
    )
    assert result["token"]["token_type"] == "DPoP", result
    # Both sides compute the same RFC 7638 thumbprint of the client's key.
    assert cnf_jkt(result["token"]["access_token"]) == result["jkt"]
    assert steps(result) == [
        ("token", 200),
        ("resource", 200),
        *((name, 401) for name in MISUSES),
    ]
    refused = dict(zip(MISUSES, result["exchanges"][2:], strict=True))
    assert "used before" in dpop_refusal(refused["replay"], "invalid_dpop_proof")
    assert "DPoP" in dpop_refusal(refused["bearer"], "invalid_token")
    assert "bound to" in dpop_refusal(refused["thief"], "invalid_dpop_proof")
    assert "'htu'" in dpop_refusal(refused["elsewhere"], "invalid_dpop_proof")
    assert "'ath'" in dpop_refusal(refused["otherToken"], "invalid_dpop_proof")


def test_panva_client_does_the_nonce_round_trips(node_dir, strict, jotguard_home):
    result = panva_client(
        node_dir,
        "ES256",
        strict.url + "oauth/token",
        client_form(jotguard_home),
        strict.url + "test-auth",
        calls=2,
        extras=("replay",),
    )
    assert steps(result) == [
        ("token", 400),  # use_dpop_nonce, with a DPoP-Nonce ...
        ("token", 200),  # ... that the retried proof carries
        ("resource", 401),  # the resource server's own nonce round trip
        ("resource", 200),
        ("resource", 200),  # the nonce it kept: no second round trip
        ("replay", 401),
    ]
    asked, got, refused, taken, again, replayed = result["exchanges"]
    assert asked["body"]["error"] == "use_dpop_nonce"
    assert asked["sentNonce"] is None
    assert asked["dpopNonce"]
    assert got["sentNonce"] == asked["dpopNonce"]
    assert got["body"]["token_type"] == "DPoP"
    dpop_refusal(refused, "use_dpop_nonce")
    assert refused["sentNonce"] is None
    assert refused["dpopNonce"]
    assert taken["sentNonce"] == refused["dpopNonce"]
    # The nonce it kept, or the fresher one a success handed out.
    assert again["sentNonce"] in (taken["sentNonce"], taken["dpopNonce"])
    dpop_refusal(replayed, "invalid_dpop_proof")


CLIENT_STATUSES = {
    "plain": [200, 200, 200],
    # use_dpop_nonce at the token endpoint and at the resource, each retried once.
    "strict": [400, 200, 401, 200, 200],
}


@pytest.mark.parametrize(
    ("lib", "alg", "server"),
    [
        *(("requests-oauth2client", alg, "plain") for alg in ALGORITHMS),
        ("requests-oauth2client", "ES256", "strict"),
        ("pydpop", "ES256", "plain"),
        ("pydpop", "ES256", "strict"),
    ],
)
async def test_python_client_libraries_end_to_end(
    python_clients, jotguard_home, request, http, lib, alg, server
):
    live: LiveServer = request.getfixturevalue(server)
    credentials = jotguard_home[1]
    url = live.url + "test-auth"
    result = python_client(
        python_clients,
        "flow",
        {
            "lib": lib,
            "alg": alg,
            "tokenUrl": live.url + "oauth/token",
            "clientId": credentials["client_id"],
            "clientSecret": credentials["client_secret"],
            "resourceUrl": url,
            "calls": 2,
        },
    )
    assert [e["status"] for e in result["exchanges"]] == CLIENT_STATUSES[server], result
    assert result["tokenType"] == "DPoP"
    assert cnf_jkt(result["token"]) == result["jkt"]
    last = result["exchanges"][-1]
    assert last["body"] == "This is a protected route."
    # The library's proof, accepted once, is refused when it comes again.
    replayed = await get(http, url, f"DPoP {result['token']}", last["proof"])
    assert replayed.code == 401
    assert json.loads(replayed.body)["error"] == "invalid_dpop_proof"
