"""The replay cache behind the protected routes: shared in Redis by every instance, and
fail-closed when it cannot answer."""

from __future__ import annotations

import json

import pytest

from tests.conftest import redis_url
from tests.dpop_http import DPoPClient, bound_token, dpop_headers, refused_with
from tests.dpop_support import key_for
from tests.ratelimit_support import closed_port, running_instance
from tests.redis_keys import own_prefix
from webapp.config.settings import Settings

# Both instances are reached as this one URL (a load balancer's), so one proof fits both.
PUBLIC_URL = "https://api.example"


def settings_with(settings: Settings, **environ: str) -> Settings:
    """``settings`` (the test's data directory and issuer) with more variables."""
    base = {
        "JOTGUARD_DATA_DIR": str(settings.data_dir),
        "JOTGUARD_ISSUER": settings.issuer,
        "JOTGUARD_ENV_FILE": str(settings.data_dir / "absent.env"),
        "JOTGUARD_REVOCATION_STORE": "memory://",
        "JOTGUARD_PUBLIC_URL": PUBLIC_URL,
    }
    return Settings.load(environ={**base, **environ})


async def replayed_at_the_second(settings: Settings, http_client) -> tuple[int, int, int]:
    """(first use at instance A, the same proof at instance B, a fresh proof at B)."""
    key = key_for("ES256")
    async with running_instance(settings) as (a, services), running_instance(settings) as (b, _):
        token = bound_token(services, key)
        client = DPoPClient(None, PUBLIC_URL, key)

        async def send(base: str, proof: str) -> int:
            response = await http_client.fetch(
                base + "/test-auth", headers=dpop_headers(proof, token), raise_error=False
            )
            return int(response.code)

        proof = client.proof("/test-auth", token)
        return (
            await send(a, proof),
            await send(b, proof),
            await send(b, client.proof("/test-auth", token)),
        )


@pytest.mark.redis
async def test_a_proof_spent_at_one_instance_is_refused_at_another(settings, http_client):
    async with own_prefix("dpop:") as prefix:
        shared = settings_with(
            settings,
            JOTGUARD_RATELIMIT_STORAGE=redis_url(),
            JOTGUARD_RATELIMIT_KEY_PREFIX=prefix + "rl",
            JOTGUARD_DPOP_KEY_PREFIX=prefix,
        )
        assert await replayed_at_the_second(shared, http_client) == (200, 401, 200)


async def test_without_redis_each_instance_remembers_only_its_own_proofs(settings, http_client):
    # What the shared cache is for: on memory, the replay at the other instance passes.
    assert await replayed_at_the_second(settings_with(settings), http_client) == (200, 200, 200)


@pytest.mark.parametrize(
    "settings_overrides",
    [{"JOTGUARD_RATELIMIT_STORAGE": f"redis://127.0.0.1:{closed_port()}/15"}],
)
async def test_a_replay_cache_outage_is_a_503_never_an_accept(
    fetch, base_url, services, issue_token
):
    client = DPoPClient(fetch, base_url, key_for("ES256"))
    token = bound_token(services, client.key)
    for _ in range(2):  # the token unknown, then verified before: the same answer
        response = await client.send("/test-auth", token)
        assert response.code == 503, response.body
        assert json.loads(response.body)["error"] == "temporarily_unavailable"
        assert int(response.headers["Retry-After"]) > 0
        assert "WWW-Authenticate" not in response.headers
    # Bearer requests need no replay cache (rate limits fail open by default).
    assert (await fetch("/test-auth", token=issue_token())).code == 200


async def test_a_full_memory_cache_is_a_503_yet_still_knows_its_replays(fetch, base_url, services):
    client = DPoPClient(fetch, base_url, key_for("ES256"))
    token = bound_token(services, client.key)
    services.dpop.verifier.replay.max_entries = 1
    first = client.proof("/test-auth", token)
    assert (await client.send("/test-auth", token, proof=first)).code == 200
    full = await client.send("/test-auth", token)
    assert full.code == 503
    assert "Retry-After" in full.headers
    refused_with(await client.send("/test-auth", token, proof=first), "invalid_dpop_proof")
