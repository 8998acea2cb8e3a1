"""Rate limits shared through a real Redis by several jotguard instances."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio
from tornado.httpclient import AsyncHTTPClient

from tests.conftest import TEST_ISSUER, redis_url
from tests.ratelimit_support import TokenEndpoint, running_instance
from tests.redis_keys import delete_prefix, own_prefix
from webapp.config.settings import Settings

pytestmark = pytest.mark.redis


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards (never FLUSHDB)."""
    async with own_prefix() as prefix:
        yield prefix


@pytest.fixture
def redis_settings(data_dir: Path, redis_prefix: str) -> Settings:
    return Settings.load(
        environ={
            "JOTGUARD_DATA_DIR": str(data_dir),
            "JOTGUARD_ISSUER": TEST_ISSUER,
            "JOTGUARD_ENV_FILE": str(data_dir / "absent.env"),
            "JOTGUARD_RATELIMIT_STORAGE": redis_url(),
            "JOTGUARD_RATELIMIT_KEY_PREFIX": redis_prefix,
            "JOTGUARD_RATELIMIT_DEFAULT": "5/minute",
            "JOTGUARD_RATELIMIT_TOKEN": "5/minute",
            # A loaded CI machine must not turn a slow answer into a fail-open pass.
            "JOTGUARD_RATELIMIT_TIMEOUT": "5",
        }
    )


@pytest.fixture
async def client() -> AsyncIterator[AsyncHTTPClient]:
    http = AsyncHTTPClient(force_instance=True)
    yield http
    http.close()


@pytest.mark.parametrize(
    ("path", "request_args"),
    [
        ("/test", {}),
        ("/limited/token", {"method": "POST", "body": "client_id=app&client_secret=right"}),
    ],
    ids=["default-sliding-window", "token-moving-window"],
)
async def test_two_instances_share_one_budget(redis_settings, client, path, request_args):
    async with (
        running_instance(redis_settings) as (first, first_services),
        running_instance(redis_settings) as (second, _),
    ):
        codes = []
        for base in (first, second):
            for _ in range(3):
                answer = await client.fetch(base + path, raise_error=False, **request_args)
                codes.append(answer.code)
        assert first_services.rate_limits.limiter.storage_failures == 0
    # 3 + 3 requests under 5/minute: exactly one refused, the last.
    assert codes == [200, 200, 200, 200, 200, 429]


async def test_redis_backed_headers_and_retry_after(redis_settings, client):
    async with running_instance(redis_settings) as (base, _):
        answers = [await client.fetch(base + "/test", raise_error=False) for _ in range(6)]
    assert answers[0].headers["RateLimit-Policy"] == '"default-60s";q=5;w=60'
    assert answers[0].headers["RateLimit"].startswith('"default-60s";r=4;t=')
    refused = answers[5]
    assert refused.code == 429
    assert json.loads(refused.body)["error"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60


async def test_distinct_key_prefixes_keep_budgets_apart(redis_settings, client, data_dir):
    other = Settings.load(
        environ={
            "JOTGUARD_DATA_DIR": str(data_dir),
            "JOTGUARD_ENV_FILE": str(data_dir / "absent.env"),
            "JOTGUARD_RATELIMIT_STORAGE": redis_url(),
            "JOTGUARD_RATELIMIT_KEY_PREFIX": redis_settings.ratelimit_key_prefix + "-other",
            "JOTGUARD_RATELIMIT_DEFAULT": "5/minute",
        }
    )
    async with (
        running_instance(redis_settings) as (first, _),
        running_instance(other) as (second, _),
    ):
        for _ in range(5):
            await client.fetch(first + "/test", raise_error=False)
        assert (await client.fetch(first + "/test", raise_error=False)).code == 429
        assert (await client.fetch(second + "/test", raise_error=False)).code == 200
    cleanup = redis.asyncio.Redis.from_url(redis_url())
    await delete_prefix(cleanup, f"{other.ratelimit_key_prefix}:")
    await cleanup.aclose()


async def test_a_burst_of_bad_secrets_holds_failure_slots_in_redis_too(redis_settings, monkeypatch):
    settings = dataclasses.replace(
        redis_settings, ratelimit_token="1000/day", ratelimit_failed_auth="10/day"
    )
    monkeypatch.setattr(TokenEndpoint, "secret_checks", 0)
    wide = AsyncHTTPClient(force_instance=True, max_clients=40)
    try:
        async with running_instance(settings) as (base, services):
            answers = await asyncio.gather(
                *(
                    wide.fetch(
                        base + "/limited/token",
                        method="POST",
                        body=f"client_id=app&client_secret=wrong{n}",
                        raise_error=False,
                    )
                    for n in range(40)
                )
            )
            assert services.rate_limits.checks_in_flight == 0
    finally:
        wide.close()
    codes = [a.code for a in answers]
    assert codes.count(401) == TokenEndpoint.secret_checks == 10
    assert codes.count(429) == 30
