"""Store outages and restarts: 503 (never 401, never a silent 200), fail-open only when
asked, recovery without a restart, and acknowledged revocations that survive one."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from tornado.httpclient import AsyncHTTPClient

from backends.auth.compact import parse_compact
from tests.conftest import redis_url, require_service
from tests.redis_keys import reachable
from tests.revocation_http_support import Proxy, body_json, serving
from webapp.service.app import make_app
from webapp.service.services import Services

DEAD_REDIS = "redis://127.0.0.1:1/0"
DEAD_MONGO = "mongodb://127.0.0.1:1/jotguard?serverSelectionTimeoutMS=50"
JSON = {"Content-Type": "application/json"}


def assert_unavailable(response):
    assert response.code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert body_json(response)["error"] == "temporarily_unavailable"
    assert "WWW-Authenticate" not in response.headers  # not "your token is dead"


async def revoke_bob(fetch, issue_token):
    """The admin API's answer to revoking subject bob."""
    return await fetch(
        "/admin/revocations",
        method="POST",
        body=json.dumps({"sub": "bob"}),
        headers=JSON,
        token=issue_token("root", scopes=["admin"]),
    )


@pytest.mark.parametrize(
    "settings_overrides",
    [{"JOTGUARD_REVOCATION_STORE": DEAD_REDIS}, {"JOTGUARD_REVOCATION_STORE": DEAD_MONGO}],
    ids=["redis", "mongodb"],
)
async def test_store_down_is_503_for_protected_and_admin_requests(fetch, issue_token):
    assert_unavailable(await fetch("/test-auth", token=issue_token("alice")))
    assert_unavailable(await revoke_bob(fetch, issue_token))
    assert (await fetch("/test")).code == 200  # unprotected routes do not need the store


@pytest.mark.parametrize(
    "settings_overrides",
    [{"JOTGUARD_REVOCATION_STORE": DEAD_REDIS, "JOTGUARD_REVOCATION_FAIL_OPEN": "true"}],
)
async def test_fail_open_lets_tokens_through_and_logs_each(fetch, issue_token, caplog):
    # A subject may carry anything its issuer put there: one line stays one line.
    token = issue_token("alice\n2030-01-01 00:00:00,000 INFO jotguard: all is well\x1b[2J")
    with caplog.at_level(logging.WARNING, logger="jotguard.auth"):
        response = await fetch("/test-auth", token=token)
    assert response.code == 200
    [record] = [r for r in caplog.records if r.name == "jotguard.auth"]
    message = record.getMessage()
    assert parse_compact(token).claims["jti"] in message
    assert "FAIL_OPEN" in message
    assert token not in message
    assert message.isprintable()  # no newline, no escape sequence: escaped
    assert "sub='alice\\n2030-01-01" in message
    # Writes still need the store: nothing is claimed that was not stored.
    assert_unavailable(await revoke_bob(fetch, issue_token))


@pytest.mark.redis
async def test_server_starts_with_redis_down_and_recovers_by_itself(settings, data_dir):
    require_service("Redis", reachable(redis_url()))
    proxy = Proxy(redis_url())
    port = await proxy.reserve()
    prefix = f"jotguard-test:{port}:"
    settings = settings.__class__.load(
        environ={
            "JOTGUARD_DATA_DIR": str(data_dir),
            "JOTGUARD_ISSUER": settings.issuer,
            "JOTGUARD_ENV_FILE": str(data_dir / "absent.env"),
            "JOTGUARD_REVOCATION_STORE": f"redis://127.0.0.1:{port}/15?prefix={prefix}",
            # The mirror polls every 50 ms and fails closed 0.5 s after it lost the store.
            "JOTGUARD_REVOCATION_POLL_INTERVAL": "0.05",
            "JOTGUARD_REVOCATION_FRESHNESS": "0.5",
        }
    )
    services = await Services.start(settings)  # the store is down: start anyway
    client = AsyncHTTPClient(force_instance=True)
    try:
        async with serving(make_app(services)) as base:

            async def get(token):
                return await client.fetch(
                    base + "/test-auth",
                    headers={"Authorization": f"Bearer {token}"},
                    raise_error=False,
                )

            async def answers(token, expected):
                # Within the freshness bound (and a poll), bounded: never a timed assertion.
                for _ in range(500):
                    response = await get(token)
                    if response.code == expected:
                        return response
                    await asyncio.sleep(0.01)
                return response

            alice = services.issuer.sign(services.issuer.claims_for("alice")).token
            admin = services.issuer.sign(services.issuer.claims_for("root", scopes=["admin"]))
            assert_unavailable(await get(alice))

            await proxy.up()
            assert (await answers(alice, 200)).code == 200
            post = await client.fetch(
                base + "/admin/revocations",
                method="POST",
                body=json.dumps({"sub": "alice"}),
                headers={"Authorization": f"Bearer {admin.token}", **JSON},
                raise_error=False,
            )
            assert post.code == 201

            assert (await get(alice)).code == 401  # applied here before the 201

            await proxy.down()
            assert_unavailable(await answers(alice, 503))
            await proxy.up()
            assert (await answers(alice, 401)).code == 401
    finally:
        client.close()
        await proxy.down()
        await services.close()
        from redis.asyncio import Redis

        from tests.redis_keys import delete_prefix

        cleanup = Redis.from_url(redis_url())
        await delete_prefix(cleanup, prefix)
        await cleanup.aclose()


async def test_sqlite_revocations_survive_a_restart(settings):
    """Default store: revoke, stop everything, rebuild from the same data dir: still 401."""
    client = AsyncHTTPClient(force_instance=True)
    services = await Services.start(settings)
    try:
        token = services.issuer.sign(services.issuer.claims_for("alice")).token
        admin = services.issuer.sign(services.issuer.claims_for("root", scopes=["admin"])).token
        async with serving(make_app(services)) as base:
            post = await client.fetch(
                base + "/admin/revocations",
                method="POST",
                body=json.dumps({"token": token}),
                headers={"Authorization": f"Bearer {admin}", **JSON},
                raise_error=False,
            )
            assert post.code == 201
    finally:
        await services.close()

    restarted = await Services.start(settings)
    try:
        assert restarted.settings.revocation_store_url.startswith("sqlite:///")
        async with serving(make_app(restarted)) as base:
            response = await client.fetch(
                base + "/test-auth", headers={"Authorization": f"Bearer {token}"}, raise_error=False
            )
        assert response.code == 401
        assert body_json(response)["error_description"] == "The token has been revoked"
    finally:
        client.close()
        await restarted.close()
