"""One Redis pool per URL, shared by the stores that use it, closed by the last of them;
each user's operations bounded by its own budget, not by the pool's backstop."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from limits.aio.storage import MemoryStorage
from redis.asyncio import Redis

from backends.dpop.replay_redis import RedisReplayCache
from backends.errors import BackendUnavailable
from backends.ratelimit import Decision, Policy
from backends.ratelimit.limits import LimitsRateLimit
from backends.revocation.factory import open_store
from backends.revocation.mirror import RevocationMirror
from backends.revocation.redis import RedisRevocationStore
from backends.storage.redis import BACKSTOP_TIMEOUT, open_pools, pool_key, redis_client
from tests.conftest import redis_url
from tests.redis_keys import own_prefix
from tests.redis_server import silent_redis
from webapp.config.fields import SettingsError
from webapp.config.settings import Settings
from webapp.service.services import Services

POLICY = Policy("pools", "1000/minute")
NOW = 1_700_000_000.0


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    async with own_prefix("pools:") as prefix:
        yield prefix


def named(url: str, name: str) -> str:
    """``url`` whose connections introduce themselves as ``name`` (CLIENT SETNAME)."""
    return f"{url}{'&' if '?' in url else '?'}client_name={name}"


async def connections_named(name: str) -> int:
    """How many connections the shared Redis holds open under ``name``."""
    client = Redis.from_url(redis_url())
    try:
        listing = await client.client_list()
    finally:
        await client.aclose()
    return sum(1 for entry in listing if entry.get("name") == name)


async def closed_on_the_server(name: str) -> bool:
    # The server notices a closed socket on its next event-loop turn, not at once.
    for _ in range(100):
        if await connections_named(name) == 0:
            return True
        await asyncio.sleep(0.01)
    return False


# -- which pool a URL names ---------------------------------------------------------------


def test_urls_redis_reads_alike_name_one_pool_and_others_another():
    same = [
        "redis://127.0.0.1:6379/0",
        "redis://127.0.0.1",
        "redis://127.0.0.1:6379",
        "redis://127.0.0.1/0?prefix=jotguard:elsewhere:",  # jotguard's own parameter
    ]
    assert len({pool_key(url) for url in same}) == 1
    others = [
        "redis://127.0.0.1:6379/1",
        "redis://127.0.0.1:6380/0",
        "redis://10.0.0.1:6379/0",
        "rediss://127.0.0.1:6379/0",
        "redis://user:pw@127.0.0.1:6379/0",
        "redis://127.0.0.1:6379/0?socket_timeout=0.2",
    ]
    assert len({pool_key(url) for url in [same[0], *others]}) == 1 + len(others)
    assert "pw" not in repr(pool_key(others[4]))
    assert pool_key(others[4]) != pool_key("redis://user:other@127.0.0.1:6379/0")


async def test_two_users_of_one_url_share_a_pool_and_another_db_gets_its_own():
    first, second = redis_client(redis_url()), redis_client(redis_url())
    other_db = redis_client("redis://127.0.0.1:6379/14")
    try:
        assert first.connection_pool is second.connection_pool
        assert other_db.connection_pool is not first.connection_pool
        assert len(open_pools()) == 2
    finally:
        for client in (first, second, other_db):
            await client.aclose()
    assert open_pools() == {}


def test_outside_an_event_loop_a_client_has_a_pool_of_its_own():
    first, second = redis_client(redis_url()), redis_client(redis_url())
    assert first.connection_pool is not second.connection_pool
    for client in (first, second):
        asyncio.run(client.aclose())


async def test_pools_have_the_backstop_timeouts_and_the_url_wins():
    default, tuned = redis_client(redis_url()), redis_client(f"{redis_url()}?socket_timeout=0.2")
    try:
        options = default.connection_pool.connection_kwargs
        assert options["socket_timeout"] == options["socket_connect_timeout"] == BACKSTOP_TIMEOUT
        assert options["retry"].get_retries() == 1
        assert tuned.connection_pool.connection_kwargs["socket_timeout"] == 0.2
    finally:
        await default.aclose()
        await tuned.aclose()


def test_no_budget_may_outlast_the_pools_backstop(tmp_path):
    def load(timeout: float) -> Settings:
        environ = {
            "JOTGUARD_ENV_FILE": str(tmp_path / "absent.env"),
            "JOTGUARD_RATELIMIT_TIMEOUT": str(timeout),
        }
        return Settings.load(environ=environ)

    assert load(BACKSTOP_TIMEOUT).ratelimit_timeout == BACKSTOP_TIMEOUT
    with pytest.raises(SettingsError):
        load(BACKSTOP_TIMEOUT + 0.5)


# -- closing ------------------------------------------------------------------------------


@pytest.mark.redis
async def test_closing_one_user_keeps_the_other_working_and_the_last_closes_the_pool():
    name = f"jotguard-test-{uuid.uuid4().hex}"
    url = named(redis_url(), name)
    first, second = redis_client(url), redis_client(url)
    await asyncio.gather(first.ping(), second.ping())  # two connections at once
    assert await connections_named(name) == 2
    await first.aclose()
    await first.aclose()  # twice closed is once released
    assert await second.ping()
    assert await connections_named(name) == 2  # handed back, still pooled
    await second.aclose()
    assert open_pools() == {}
    assert await closed_on_the_server(name)


@pytest.mark.redis
async def test_a_store_a_limiter_and_a_replay_cache_on_one_url_share_its_pool(prefix):
    url = f"{redis_url()}?prefix={prefix}"
    store = RedisRevocationStore.from_url(url)
    limiter = LimitsRateLimit.redis(redis_url(), key_prefix=prefix + "rl")
    # The revocation store's URL, as the service hands it on when the rate limiter is not
    # on Redis: its ?prefix= is jotguard's, never given to redis-py.
    cache = RedisReplayCache.from_url(url, prefix=prefix + "dpop:")
    (pool,) = open_pools().values()
    assert limiter.client is not None
    assert store.redis.connection_pool is pool is limiter.client.connection_pool
    assert cache.redis.connection_pool is pool
    await store.ping()
    await store.close()
    assert (await limiter.hit(POLICY, "k")) == Decision(True)
    assert await cache.first_use("jkt", "jti", expires_at=NOW + 60, now=NOW)
    await cache.aclose()
    assert (await limiter.hit(POLICY, "k")) == Decision(True)
    await limiter.aclose()
    assert open_pools() == {}


@pytest.fixture
def client_name() -> str:
    return f"jotguard-test-{uuid.uuid4().hex}"


@pytest.fixture
def settings_overrides(prefix: str, client_name: str) -> dict[str, str]:
    shared = named(redis_url(), client_name)
    return {
        "JOTGUARD_REVOCATION_STORE": f"{shared}&prefix={prefix}",
        "JOTGUARD_RATELIMIT_STORAGE": shared,
        "JOTGUARD_RATELIMIT_KEY_PREFIX": prefix + "rl",
        "JOTGUARD_DPOP": "allowed",
    }


@pytest.mark.redis
async def test_services_on_one_redis_open_one_pool_and_close_it(settings, prefix, client_name):
    services = await Services.start(settings)
    try:
        limiter = services.rate_limits.limiter
        assert isinstance(limiter, LimitsRateLimit)
        assert (await limiter.hit(POLICY, "k")) == Decision(True)
        assert services.dpop is not None
        replay = services.dpop.verifier.replay
        assert isinstance(replay, RedisReplayCache)
        assert await replay.first_use("jkt", prefix, expires_at=NOW + 60, now=NOW)
        assert isinstance(services.revocations, RevocationMirror)
        store = services.revocations.store  # loaded by the mirror, and followed
        assert isinstance(store, RedisRevocationStore)
        (pool,) = open_pools().values()
        assert limiter.client is not None
        assert store.redis.connection_pool is pool is limiter.client.connection_pool
        assert replay.redis.connection_pool is pool
        assert await connections_named(client_name) >= 1
    finally:
        await services.close()
    assert open_pools() == {}
    assert await closed_on_the_server(client_name)


# -- budgets: a user's own limit, not the pool's backstop ---------------------------------


async def test_a_store_operation_past_its_budget_is_unavailable_at_once():
    async with silent_redis() as (url, accepted):
        store = RedisRevocationStore(redis_client(url))
        store.timeout = 0.1
        started = time.monotonic()
        try:
            with pytest.raises(BackendUnavailable) as down:
                await store.ping()
        finally:
            await store.close()
        assert time.monotonic() - started < BACKSTOP_TIMEOUT / 4
        assert accepted.is_set()
        assert "revocation store cannot answer (TimeoutError)" in down.value.description


async def test_a_proof_past_the_replay_caches_budget_is_unavailable_at_once():
    async with silent_redis() as (url, _):
        cache = RedisReplayCache(redis_client(url), timeout=0.1)
        started = time.monotonic()
        try:
            with pytest.raises(BackendUnavailable):
                await cache.first_use("jkt", "jti", expires_at=NOW + 60, now=NOW)
        finally:
            await cache.aclose()
        assert time.monotonic() - started < BACKSTOP_TIMEOUT / 4


async def test_the_url_timeout_is_the_budget_of_users_without_a_setting():
    store = open_store("redis://127.0.0.1:6379/0?socket_timeout=3&prefix=p:")
    cache = RedisReplayCache.from_url("redis://127.0.0.1:6379/0")
    try:
        assert isinstance(store, RedisRevocationStore)
        assert (store.timeout, store.prefix, cache.timeout) == (3.0, "p:", 0.5)
    finally:
        await store.close()
        await cache.aclose()


class HangingStorage(MemoryStorage):
    """A limits storage whose every answer hangs."""

    async def acquire_sliding_window_entry(self, key, limit, expiry, amount=1):
        await asyncio.Event().wait()

    async def get_sliding_window(self, key, expiry):
        await asyncio.Event().wait()

    async def check(self):
        await asyncio.Event().wait()


@pytest.mark.parametrize("fail_closed", [False, True])
async def test_a_limiter_decision_past_its_timeout_is_a_storage_failure(fail_closed):
    limiter = LimitsRateLimit(HangingStorage(), timeout=0.05, fail_closed=fail_closed)
    # wait_for only turns a regression into a failure instead of a hang.
    decision = await asyncio.wait_for(limiter.hit(POLICY, "k"), 5)
    assert (decision.allowed, decision.storage_failed) == (not fail_closed, True)
    assert limiter.storage_failures == 1


async def test_a_usage_report_or_readiness_check_past_the_timeout_says_none():
    limiter = LimitsRateLimit(HangingStorage(), timeout=0.05)
    assert await asyncio.wait_for(limiter.usage(POLICY, "k"), 5) is None
    assert await asyncio.wait_for(limiter.check(), 5) is False
