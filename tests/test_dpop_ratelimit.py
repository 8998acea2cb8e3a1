"""DPoP proofs and the rate limits: a bad proof is a failed authentication, and checking a
proof is verification work the preauth guard counts."""

from __future__ import annotations

import pytest

from tests.dpop_http import DPoPClient, bound_token, refused_with
from tests.dpop_support import key_for


@pytest.mark.parametrize("settings_overrides", [{"JOTGUARD_RATELIMIT_FAILED_AUTH": "3/minute"}])
async def test_bad_proofs_spend_the_failed_auth_budget(dpop_client, services, issue_token):
    token = bound_token(services, dpop_client.key)
    thief = DPoPClient(dpop_client.fetch, dpop_client.base_url, key_for("EdDSA"))
    for _ in range(3):
        refused_with(await thief.send("/test-auth", token), "invalid_dpop_proof")
    # The address is locked out: a token never seen before is no longer checked ...
    locked = await dpop_client.fetch("/test-auth", token=issue_token("bob"))
    assert locked.code == 429
    assert locked.headers["RateLimit-Policy"] == '"failed-auth-60s";q=3;w=60'
    # ... while the good dpop_client behind the same address, its token verified before and
    # its proofs right, is not held back by what a guesser did.
    assert (await dpop_client.send("/test-auth", token)).code == 200


@pytest.mark.parametrize(
    "settings_overrides",
    [{"JOTGUARD_RATELIMIT_PREAUTH": "3/minute", "JOTGUARD_RATELIMIT_FAILED_AUTH": "1000/minute"}],
)
async def test_each_proof_is_charged_to_the_preauth_guard(
    dpop_client, services, fetch, issue_token
):
    token = bound_token(services, dpop_client.key)
    codes = [(await dpop_client.send("/test-auth", token)).code for _ in range(4)]
    assert codes == [200, 200, 200, 429]  # the token verified once, its proofs every time
    bearer = issue_token("bob")
    assert (await fetch("/test-auth", token=bearer)).code == 429  # the same guard
