"""Liveness and readiness through HTTP: /healthz never touches a dependency, /readyz does."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from tests.conftest import redis_url, require_service
from tests.redis_keys import reachable
from webapp.service.readiness import Readiness


def closed_port() -> int:
    """A port nothing listens on: bound, read, released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
async def live_redis() -> AsyncIterator[aioredis.Redis]:
    require_service("Redis", reachable(redis_url()))
    client = aioredis.Redis.from_url(redis_url(), socket_connect_timeout=0.5)
    yield client
    await client.aclose()


@pytest.fixture
async def dead_redis() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(
        f"redis://127.0.0.1:{closed_port()}/15", socket_connect_timeout=0.5
    )
    yield client
    await client.aclose()


async def test_healthz_is_ok_without_io(fetch):
    response = await fetch("/healthz")
    assert response.code == 200
    assert json.loads(response.body) == {"status": "ok"}


async def test_readyz_on_embedded_defaults_checks_the_revocation_store(fetch):
    response = await fetch("/readyz")
    assert response.code == 200
    assert json.loads(response.body) == {"status": "ready", "checks": {"revocation_store": "ok"}}


@pytest.fixture
def bare_readiness(services):
    """Only the checks a test registers (the embedded revocation store's is dropped)."""
    services.readiness.checks.clear()
    return services.readiness


async def test_readyz_is_ready_when_redis_answers(fetch, services, bare_readiness, live_redis):
    services.readiness.add("redis", live_redis.ping)
    response = await fetch("/readyz")
    assert response.code == 200
    assert json.loads(response.body) == {"status": "ready", "checks": {"redis": "ok"}}


async def test_readyz_names_a_stopped_redis_while_healthz_stays_up(
    fetch, services, bare_readiness, live_redis, dead_redis
):
    services.readiness.add("revocation_store", live_redis.ping)
    services.readiness.add("redis", dead_redis.ping)

    response = await fetch("/readyz")

    assert response.code == 503
    assert response.headers["Retry-After"] == "5"
    body = json.loads(response.body)
    assert body["status"] == "unavailable"
    assert body["error"] == "temporarily_unavailable"
    assert body["error_description"] == "Not ready: redis"
    assert body["checks"] == {"revocation_store": "ok", "redis": "failed: ConnectionError"}
    assert (await fetch("/healthz")).code == 200


async def test_a_hanging_check_times_out_and_the_others_still_report(
    fetch, services, bare_readiness
):
    services.readiness.timeout = 0.05
    hung = asyncio.Event()

    async def hangs() -> None:
        await hung.wait()

    async def answers() -> None:
        return None

    services.readiness.add("jwks:https://tenant.example/", hangs)
    services.readiness.add("user_store", answers)

    response = await fetch("/readyz")

    assert response.code == 503
    body = json.loads(response.body)
    assert body["checks"] == {
        "jwks:https://tenant.example/": "no answer within 0.05s",
        "user_store": "ok",
    }
    assert body["error_description"] == "Not ready: jwks:https://tenant.example/"


async def test_a_check_that_raises_synchronously_is_a_failure_not_a_500(
    fetch, services, bare_readiness
):
    def broken():  # not even a coroutine function
        raise RuntimeError("boom")

    services.readiness.add("broken", broken)
    response = await fetch("/readyz")
    assert response.code == 503
    assert json.loads(response.body)["checks"] == {"broken": "failed: RuntimeError"}


async def test_readiness_logs_a_transition_once_not_every_probe(fetch, services, caplog):
    up = True

    async def flaky() -> None:
        if not up:
            raise ConnectionError("refused")

    services.readiness.add("store", flaky)
    caplog.set_level("INFO", logger="jotguard")
    assert (await fetch("/readyz")).code == 200
    up = False
    assert (await fetch("/readyz")).code == 503
    assert (await fetch("/readyz")).code == 503
    up = True
    assert (await fetch("/readyz")).code == 200

    lines = [r.getMessage() for r in caplog.records if r.name == "jotguard"]
    assert lines == ["not ready: store: ConnectionError: refused", "ready again: store"]


async def test_concurrent_probes_share_one_run():
    readiness = Readiness(timeout=5)
    calls = 0
    release = asyncio.Event()

    async def slow() -> None:
        nonlocal calls
        calls += 1
        await release.wait()

    readiness.add("slow", slow)
    probes = [asyncio.ensure_future(readiness.run()) for _ in range(5)]
    await asyncio.sleep(0)  # every probe has started and is waiting on the same run
    release.set()
    assert await asyncio.gather(*probes) == [{"slow": "ok"}] * 5
    assert calls == 1
    assert await readiness.run() == {"slow": "ok"}
    assert calls == 2  # a finished run is not cached: the next probe checks again


def test_a_check_name_is_registered_once(services):
    async def check() -> None:
        return None

    services.readiness.add("redis", check)
    with pytest.raises(ValueError, match="redis"):
        services.readiness.add("redis", check)
