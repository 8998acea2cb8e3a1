"""What every replay cache promises (``backends.dpop.replay.ReplayCache``), held by each:
memory (one process), SQLite (the processes of one machine), Redis (every instance).

A proof is accepted once, remembered while it would still be accepted, then forgotten;
a full cache and one that cannot answer raise ``BackendUnavailable`` (503), never an
accept. The caches shared between processes also let one use of a proof through however
many instances race for it. What only one cache does (the memory one's generations,
Redis's TTLs, SQLite's purge) is tested beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from backends.dpop import MemoryReplayCache, ReplayCache
from backends.dpop.replay_redis import RedisReplayCache
from backends.dpop.replay_sqlite import FILE_NAME, SQLiteReplayCache
from backends.errors import BackendUnavailable
from tests.cli import free_port
from tests.conftest import redis_url
from tests.redis_keys import own_prefix
from tests.redis_server import own_redis, silent_redis
from webapp.web.errors import error_answer

NOW = 1_700_000_000.0
JKT = "j" * 43
WINDOW = 120.0  # the memory cache's; every proof here expires within it
# Redis counts a proof's time itself (a relative TTL, one second more than asked for):
# only real time passing makes it forget.
REDIS_SHORTEST_TTL = 1.0


@dataclass
class Kind:
    """How to open one kind of cache, and how to get past a proof's expiry with it."""

    name: str
    open: Callable[..., ReplayCache]
    past: Callable[[float], Awaitable[float]]
    """Given a proof's ``expires_at``, a ``now`` at which the cache has forgotten it."""


async def memory_past(expires_at: float) -> float:
    return expires_at + 2 * WINDOW  # two generations on


async def clock_past(expires_at: float) -> float:
    return expires_at + 0.001


async def redis_past(expires_at: float) -> float:
    await asyncio.sleep(REDIS_SHORTEST_TTL + 0.05)
    return expires_at + 1


@contextlib.asynccontextmanager
async def kind_of(name: str, tmp_path: Path) -> AsyncIterator[Kind]:
    opened: list[ReplayCache] = []

    def keep(cache: ReplayCache) -> ReplayCache:
        opened.append(cache)
        return cache

    async with contextlib.AsyncExitStack() as stack:
        if name == "memory":
            yield Kind(name, lambda **kw: keep(MemoryReplayCache(WINDOW, **kw)), memory_past)
        elif name == "sqlite":
            path = tmp_path / FILE_NAME
            yield Kind(name, lambda **kw: keep(SQLiteReplayCache(path, **kw)), clock_past)
        else:
            prefix = await stack.enter_async_context(own_prefix("dpop:"))
            url = redis_url()
            yield Kind(
                name, lambda: keep(RedisReplayCache.from_url(url, prefix=prefix)), redis_past
            )
        for cache in opened:
            await cache.aclose()


REDIS = pytest.param("redis", marks=pytest.mark.redis)


@pytest.fixture(params=["memory", "sqlite", REDIS])
async def kind(request: Any, tmp_path: Path) -> AsyncIterator[Kind]:
    async with kind_of(request.param, tmp_path) as made:
        yield made


@pytest.fixture(params=["sqlite", REDIS])
async def shared(request: Any, tmp_path: Path) -> AsyncIterator[Kind]:
    """The caches several processes share."""
    async with kind_of(request.param, tmp_path) as made:
        yield made


async def test_a_proof_is_accepted_once(kind: Kind) -> None:
    cache = kind.open()
    assert await cache.first_use(JKT, "a", expires_at=NOW + 60, now=NOW)
    assert not await cache.first_use(JKT, "a", expires_at=NOW + 60, now=NOW + 1)
    assert not await cache.first_use(JKT, "a", expires_at=NOW + 60, now=NOW + 2)
    assert await cache.first_use(JKT, "b", expires_at=NOW + 60, now=NOW + 2)  # another jti
    assert await cache.first_use("k" * 43, "a", expires_at=NOW + 60, now=NOW + 2)  # another key


async def test_a_proof_is_remembered_until_its_expiry_then_forgotten(kind: Kind) -> None:
    cache = kind.open()
    assert await cache.first_use(JKT, "a", expires_at=NOW, now=NOW)
    # At its expires_at a proof is still accepted (iat + lifetime + leeway): still a replay.
    assert not await cache.first_use(JKT, "a", expires_at=NOW, now=NOW)
    later = await kind.past(NOW)
    assert await cache.first_use(JKT, "a", expires_at=later, now=later)
    assert not await cache.first_use(JKT, "a", expires_at=later, now=later)


async def test_a_clock_stepping_back_forgets_nothing(kind: Kind) -> None:
    cache = kind.open()
    assert await cache.first_use(JKT, "a", expires_at=NOW + 60, now=NOW)
    assert not await cache.first_use(JKT, "a", expires_at=NOW - 3600, now=NOW - 3600)


async def test_of_many_uses_of_one_proof_at_once_exactly_one_passes(kind: Kind) -> None:
    caches = [kind.open() for _ in range(2)] if kind.name != "memory" else [kind.open()]
    uses = [c.first_use(JKT, "race", expires_at=NOW + 60, now=NOW) for c in caches * 10]
    assert sorted(await asyncio.gather(*uses)) == [False] * (len(uses) - 1) + [True]


async def test_instances_on_one_store_refuse_each_others_proofs(shared: Kind) -> None:
    first, second = shared.open(), shared.open()
    assert await first.first_use(JKT, "a", expires_at=NOW + 60, now=NOW)
    assert not await second.first_use(JKT, "a", expires_at=NOW + 60, now=NOW)
    assert await second.first_use(JKT, "b", expires_at=NOW + 60, now=NOW)
    assert not await first.first_use(JKT, "b", expires_at=NOW + 60, now=NOW)


# -- full: refuse, rather than forget a proof still acceptable -----------------------------


@dataclass
class Full:
    cache: ReplayCache
    fill: Callable[[], Awaitable[None]]
    """After three proofs, make the cache full (memory and SQLite hold three already)."""
    replay_when_full: str
    """``refused``: a known proof is still told apart; ``unavailable``: Redis at its
    ``maxmemory`` refuses every write, a replay's ``SET NX`` included."""


async def nothing() -> None:
    return None


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def full(request: Any, tmp_path: Path) -> AsyncIterator[Full]:
    if request.param != "redis":
        async with kind_of(request.param, tmp_path) as made:
            yield Full(made.open(max_entries=3), nothing, "refused")
        return
    # A Redis of the test's own: the shared one must never be made full.
    with own_redis(tmp_path) as server:
        cache = RedisReplayCache.from_url(server.url)

        async def at_maxmemory() -> None:
            for setting in (b"maxmemory-policy", b"noeviction"), (b"maxmemory", b"1"):
                assert server.command(b"CONFIG", b"SET", *setting) == b"+OK"

        yield Full(cache, at_maxmemory, "unavailable")
        await cache.aclose()


async def test_a_full_cache_refuses_new_proofs_and_passes_no_replay(full: Full) -> None:
    for jti in "abc":
        assert await full.cache.first_use(JKT, jti, expires_at=NOW + 60, now=NOW)
    await full.fill()
    with pytest.raises(BackendUnavailable) as refused:
        await full.cache.first_use(JKT, "d", expires_at=NOW + 60, now=NOW)
    assert error_answer(refused.value).status == 503
    assert 1 <= refused.value.retry_after <= WINDOW
    if full.replay_when_full == "refused":
        assert not await full.cache.first_use(JKT, "a", expires_at=NOW + 60, now=NOW)
    else:
        with pytest.raises(BackendUnavailable):
            await full.cache.first_use(JKT, "a", expires_at=NOW + 60, now=NOW)


@pytest.mark.parametrize("name", ["memory", "sqlite"])
async def test_a_full_cache_has_room_again_once_its_proofs_expire(name: str, tmp_path) -> None:
    async with kind_of(name, tmp_path) as made:
        cache = made.open(max_entries=2)
        assert await cache.first_use(JKT, "a", expires_at=NOW + 10, now=NOW)
        assert await cache.first_use(JKT, "b", expires_at=NOW + 60, now=NOW)
        with pytest.raises(BackendUnavailable):
            await cache.first_use(JKT, "c", expires_at=NOW + 60, now=NOW)
        later = await made.past(NOW + 60)
        assert await cache.first_use(JKT, "c", expires_at=later + 60, now=later)
        assert await cache.first_use(JKT, "d", expires_at=later + 60, now=later)
        with pytest.raises(BackendUnavailable):
            await cache.first_use(JKT, "e", expires_at=later + 60, now=later)


# -- a cache that cannot answer: 503, never an accept --------------------------------------

Outage = Callable[[Path], contextlib.AbstractAsyncContextManager[ReplayCache]]


@contextlib.asynccontextmanager
async def sqlite_locked(tmp_path: Path) -> AsyncIterator[ReplayCache]:
    """Another process (an operator's ``sqlite3`` shell) holds the file's lock."""
    cache = SQLiteReplayCache(tmp_path / FILE_NAME, timeout=0.2)
    assert await cache.first_use(JKT, "before", expires_at=NOW + 60, now=NOW)
    holder = sqlite3.connect(tmp_path / FILE_NAME, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        yield cache
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert await cache.first_use(JKT, "after", expires_at=NOW + 60, now=NOW)  # recovered
    await cache.aclose()


@contextlib.asynccontextmanager
async def sqlite_unopenable(tmp_path: Path) -> AsyncIterator[ReplayCache]:
    """The path is a directory (a misconfigured volume): the file cannot be opened."""
    (tmp_path / FILE_NAME).mkdir()
    cache = SQLiteReplayCache(tmp_path / FILE_NAME)
    yield cache
    await cache.aclose()


@contextlib.asynccontextmanager
async def sqlite_not_a_database(tmp_path: Path) -> AsyncIterator[ReplayCache]:
    (tmp_path / FILE_NAME).write_bytes(b"not SQLite" * 1000)
    cache = SQLiteReplayCache(tmp_path / FILE_NAME)
    yield cache
    await cache.aclose()


@contextlib.asynccontextmanager
async def redis_down(tmp_path: Path) -> AsyncIterator[ReplayCache]:
    cache = RedisReplayCache.from_url(f"redis://127.0.0.1:{free_port()}/0")
    yield cache
    await cache.aclose()


@contextlib.asynccontextmanager
async def redis_silent(tmp_path: Path) -> AsyncIterator[ReplayCache]:
    """A Redis that accepts connections and never answers (hung, or black-holed)."""
    async with silent_redis() as (url, accepted):
        cache = RedisReplayCache.from_url(f"{url}?socket_timeout=0.2")
        yield cache
        assert accepted.is_set()
        await cache.aclose()


@pytest.mark.parametrize(
    "outage", [sqlite_locked, sqlite_unopenable, sqlite_not_a_database, redis_down, redis_silent]
)
async def test_a_cache_that_cannot_answer_is_unavailable_never_an_accept(
    outage: Outage, tmp_path: Path
) -> None:
    async with outage(tmp_path) as cache:
        for jti in ("new", "new"):  # the same answer the second time
            with pytest.raises(BackendUnavailable) as down:
                await cache.first_use(JKT, jti, expires_at=NOW + 60, now=NOW)
            assert error_answer(down.value).status == 503
            assert down.value.retry_after > 0
