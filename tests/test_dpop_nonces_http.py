"""Server nonces on the protected routes (RFC 9449 §8-9), JOTGUARD_DPOP_NONCE=on."""

from __future__ import annotations

import time

import pytest

from tests.dpop_http import bound_token, refused_with


@pytest.fixture
def settings_overrides() -> dict[str, str]:
    return {"JOTGUARD_DPOP_NONCE": "on", "JOTGUARD_RATELIMIT_FAILED_AUTH": "3/minute"}


@pytest.fixture
def token(services, dpop_client):
    return bound_token(services, dpop_client.key)


async def test_a_proof_without_the_nonce_is_told_the_nonce_then_passes_with_it(dpop_client, token):
    response = await dpop_client.send("/test-auth", token)
    refused_with(response, "use_dpop_nonce")
    nonce = response.headers["DPoP-Nonce"]
    retried = await dpop_client.send("/test-auth", token, nonce=nonce)
    assert retried.code == 200, retried.body
    assert "DPoP-Nonce" not in retried.headers  # the nonce is current: nothing newer


async def test_a_nonce_not_issued_here_is_refused(dpop_client, token):
    response = await dpop_client.send("/test-auth", token, nonce="A" * 43)
    refused_with(response, "use_dpop_nonce")


async def test_an_aging_nonce_passes_and_a_fresh_one_comes_with_the_answer(
    dpop_client, token, services
):
    nonces = services.dpop.verifier.nonces
    previous = nonces.issue(time.time() - nonces.step)
    response = await dpop_client.send("/test-auth", token, nonce=previous)
    assert response.code == 200
    assert response.headers["DPoP-Nonce"] == nonces.issue(time.time())


async def test_asking_for_the_nonce_is_not_a_failed_authentication(dpop_client, token, issue_token):
    for _ in range(5):  # over the failed-auth budget of 3
        refused_with(await dpop_client.send("/test-auth", token), "use_dpop_nonce")
    # The address is not locked out: a token never seen before is still checked.
    assert (await dpop_client.fetch("/test-auth", token=issue_token("bob"))).code == 200


async def test_bearer_tokens_need_no_nonce(fetch, issue_token):
    response = await fetch("/test-auth", token=issue_token())
    assert response.code == 200
    assert "DPoP-Nonce" not in response.headers
