"""Revocations written at once through the admin API of two instances sharing one Redis:
every one is acknowledged (never "too busy" while Redis is healthy) and enforced by both."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from tornado.httpclient import AsyncHTTPClient

from backends.principal import Principal
from tests.conftest import TEST_ISSUER
from tests.revocation_http_support import serving, store_url
from webapp.service.app import make_app
from webapp.service.services import Services

pytestmark = pytest.mark.redis

CLIENTS_PER_INSTANCE = 4
REVOCATIONS_PER_CLIENT = 25


@pytest.fixture
async def redis_store(tmp_path):
    async with store_url("redis", tmp_path) as url:
        yield url


async def test_8_writers_through_two_instances_are_all_acknowledged_and_enforced(
    settings, redis_store
):
    shared = settings.__class__.load(
        environ={
            "JOTGUARD_DATA_DIR": str(settings.data_dir),
            "JOTGUARD_ISSUER": settings.issuer,
            "JOTGUARD_ENV_FILE": str(settings.env_file),
            "JOTGUARD_REVOCATION_STORE": redis_store,
            "JOTGUARD_RATELIMIT_ADMIN": "100000/minute",
            "JOTGUARD_RATELIMIT_PREAUTH": "100000/minute",
        }
    )
    instances = [await Services.start(shared) for _ in range(2)]
    client = AsyncHTTPClient(force_instance=True, max_clients=CLIENTS_PER_INSTANCE * 2)
    try:
        admin = instances[0].issuer.sign(instances[0].issuer.claims_for("root", scopes=["admin"]))
        async with serving(make_app(instances[0])) as a, serving(make_app(instances[1])) as b:

            async def writer(base: str, n: int) -> list[int]:
                statuses = []
                for i in range(REVOCATIONS_PER_CLIENT):
                    # Each its own subject, and all of them one shared subject too.
                    for sub in (f"user-{n}-{i}", "everyone"):
                        response = await client.fetch(
                            base + "/admin/revocations",
                            method="POST",
                            body=json.dumps({"sub": sub}),
                            headers={
                                "Authorization": f"Bearer {admin.token}",
                                "Content-Type": "application/json",
                            },
                            raise_error=False,
                        )
                        statuses.append(response.code)
                return statuses

            bases = [a] * CLIENTS_PER_INSTANCE + [b] * CLIENTS_PER_INSTANCE
            results = await asyncio.gather(*(writer(base, n) for n, base in enumerate(bases)))

        statuses = [status for result in results for status in result]
        assert len(statuses) == 8 * REVOCATIONS_PER_CLIENT * 2
        assert set(statuses) == {201}
        # Tokens issued before the revocations: refused by both instances.
        for services in instances:
            for n in range(8):
                for sub in (f"user-{n}-{REVOCATIONS_PER_CLIENT - 1}", "everyone"):
                    assert await _eventually_revoked(services, _issued_earlier(sub))
    finally:
        client.close()
        for services in instances:
            await services.close()


def _issued_earlier(subject: str) -> Principal:
    now = int(time.time())
    return Principal(subject, TEST_ISSUER, "j", now + 600, issued_at=now - 600)


async def _eventually_revoked(services: Services, principal) -> bool:
    for _ in range(500):
        if await services.revocations.is_revoked(principal) is not None:
            return True
        await asyncio.sleep(0.01)
    return False
