"""DPoP proofs and the rate limits: a bad proof is a failed authentication, and checking a
proof is verification work the preauth guard counts."""

from __future__ import annotations

import pytest

from tests.dpop_http import DPoPClient, bound_token, refused_with
from tests.dpop_support import key_for


@pytest.fixture
def client(fetch, base_url):
    return DPoPClient(fetch, base_url, key_for("ES256"))


@pytest.mark.parametrize("settings_overrides", [{"JOTGUARD_RATELIMIT_FAILED_AUTH": "3/minute"}])
async def test_bad_proofs_spend_the_failed_auth_budget(client, services, issue_token):
    token = bound_token(services, client.key)
    thief = DPoPClient(client.fetch, client.base_url, key_for("EdDSA"))
    for _ in range(3):
        refused_with(await thief.send("/test-auth", token), "invalid_dpop_proof")
    # The address is locked out: a token never seen before is no longer checked ...
    locked = await client.fetch("/test-auth", token=issue_token("bob"))
    assert locked.code == 429
    assert locked.headers["RateLimit-Policy"] == '"failed-auth-60s";q=3;w=60'
    # ... while the good client behind the same address, its token verified before and
    # its proofs right, is not held back by what a guesser did.
    assert (await client.send("/test-auth", token)).code == 200


@pytest.mark.parametrize(
    "settings_overrides",
    [{"JOTGUARD_RATELIMIT_PREAUTH": "3/minute", "JOTGUARD_RATELIMIT_FAILED_AUTH": "1000/minute"}],
)
async def test_each_proof_is_charged_to_the_preauth_guard(client, services, fetch, issue_token):
    token = bound_token(services, client.key)
    codes = [(await client.send("/test-auth", token)).code for _ in range(4)]
    assert codes == [200, 200, 200, 429]  # the token verified once, its proofs every time
    bearer = issue_token("bob")
    assert (await fetch("/test-auth", token=bearer)).code == 429  # the same guard
