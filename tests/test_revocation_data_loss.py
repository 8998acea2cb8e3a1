"""A store that loses or replaces its data while instances run.

Every running mirror notices (a new feed epoch, or a change counter below its cursor),
reloads the store in full, keeps enforcing what it held and writes back what the store
lost; nothing un-revoked or expired comes back, and a revocation made after the loss is
enforced at once, by the instance that made it and by the others. For every store with
a change feed: SQLite (the file replaced), Redis (a server of the test's own flushed,
restarted or set back) and MongoDB (through mongomock-motor: the database dropped, the
counter reset).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from backends.principal import Principal
from backends.revocation.base import RevocationStore
from backends.revocation.mirror import RevocationMirror
from backends.revocation.mongo import MongoRevocationStore
from backends.revocation.redis import RedisRevocationStore
from backends.revocation.sqlite import SQLiteRevocationStore
from backends.revocation.writeback import REASONS
from tests.redis_server import own_redis
from tests.waiting import eventually

ISS = "http://jotguard.test/"
LIFETIMES = {"leeway": 30, "max_token_ttl": 3600}
POLL = 0.05


def principal(sub: str, jti: str = "j", *, client: str = "app") -> Principal:
    now = int(time.time())
    return Principal(sub, ISS, jti, now + 600, now - 5, client)


class Losing:
    """A store of one kind that the test can make lose its data, or set back."""

    def open(self) -> RevocationStore:
        raise NotImplementedError

    async def lose(self) -> None:
        """Everything gone: a Redis without persistence flushed, a new SQLite file..."""
        raise NotImplementedError

    async def snapshot(self) -> None:
        """Remember the data as it is now, for :meth:`set_back`."""
        raise NotImplementedError

    async def set_back(self) -> None:
        """The data as at :meth:`snapshot`, counter included: a failover to a lagging
        replica, an older copy of the file."""
        raise NotImplementedError


class LosingSQLite(Losing):
    def __init__(self, directory: Path) -> None:
        self.path = directory / "revocations.sqlite3"
        self.copy = directory / "older.sqlite3"

    def open(self) -> RevocationStore:
        return SQLiteRevocationStore(self.path, **LIFETIMES)

    def _forget_wal(self) -> None:
        # The running server's journal belongs to the file being replaced.
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{self.path}{suffix}")

    async def lose(self) -> None:
        self._forget_wal()
        os.unlink(self.path)

    async def snapshot(self) -> None:
        source = sqlite3.connect(self.path)
        target = sqlite3.connect(self.copy)
        source.backup(target)
        source.close()
        target.close()

    async def set_back(self) -> None:
        self._forget_wal()
        os.replace(self.copy, self.path)  # as `mv older.sqlite3 revocations.sqlite3`


class LosingRedis(Losing):
    def __init__(self, server: Any) -> None:
        self.server = server
        self.prefix = f"jotguard-test:{uuid.uuid4().hex}:"
        self.saved: list[tuple[bytes, int, bytes]] = []

    def open(self) -> RevocationStore:
        return RedisRevocationStore(
            Redis.from_url(self.server.url), prefix=self.prefix, **LIFETIMES
        )

    async def lose(self) -> None:
        self.server.flushall()

    async def snapshot(self) -> None:
        client = Redis.from_url(self.server.url)
        self.saved = []
        async for key in client.scan_iter(match=self.prefix + "*"):
            ttl = await client.pttl(key)
            self.saved.append((key, max(ttl, 0), await client.dump(key)))
        await client.aclose()

    async def set_back(self) -> None:
        self.server.flushall()
        client = Redis.from_url(self.server.url)
        for key, ttl, value in self.saved:
            await client.restore(key, ttl, value)
        await client.aclose()


class LosingMongo(Losing):
    def __init__(self) -> None:
        from mongomock_motor import AsyncMongoMockClient

        self.client = AsyncMongoMockClient()
        self.database = f"jotguard_test_{uuid.uuid4().hex[:8]}"

    def open(self) -> RevocationStore:
        return MongoRevocationStore(self.client, database=self.database, settle=0.05, **LIFETIMES)

    async def lose(self) -> None:
        await self.client.drop_database(self.database)

    async def snapshot(self) -> None:
        pass

    async def set_back(self) -> None:
        # A MongoDB counter reset: the entries stay, their change numbers are handed out again.
        counters = self.client[self.database]["revocation_counters"]
        await counters.update_one({"_id": "seq"}, {"$set": {"value": 0}})


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis), "mongo-mock"])
async def losing(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Losing]:
    if request.param == "sqlite":
        yield LosingSQLite(tmp_path)
    elif request.param == "redis":
        with own_redis(tmp_path) as server:
            yield LosingRedis(server)
    else:
        yield LosingMongo()


@contextlib.asynccontextmanager
async def mirrors(losing: Losing, count: int = 1) -> AsyncIterator[list[RevocationMirror]]:
    """Running mirrors, each on its own connection to the store (an instance each)."""
    started = [
        RevocationMirror(losing.open(), poll_interval=POLL, freshness=5) for _ in range(count)
    ]
    try:
        for mirror in started:
            await mirror.start()
        yield started
    finally:
        for mirror in started:
            await mirror.close()


async def stored(losing: Losing, who: Principal) -> bool:
    """Whether the store itself (a fresh connection, as an instance started now) revokes."""
    store = losing.open()
    try:
        return await store.is_revoked(who) is not None
    finally:
        await store.close()


async def test_a_store_that_lost_its_data_gets_back_what_the_running_instances_held(losing):
    alice, bob, carol = principal("alice"), principal("bob"), principal("carol", "jc")
    async with mirrors(losing, 2) as (a, b):
        await a.revoke_subject("alice", before=time.time())
        await b.revoke_token("jc", issuer=ISS, expires_at=time.time() + 600)
        assert await eventually(lambda: _all_refuse([a, b], alice, carol))

        await losing.lose()

        # A revocation acknowledged after the loss: refused at once where it was made.
        await a.revoke_subject("bob", before=time.time())
        assert await a.is_revoked(bob) is not None
        # Both instances notice, reload, keep refusing what they held, and write it back.
        assert await eventually(lambda: _all_refuse([a, b], alice, bob, carol))
        assert await eventually(lambda: _stored_all(losing, alice, bob, carol))
        for mirror in (a, b):
            assert mirror.recovery.reloads.value("epoch_changed") == 1
        written = a.recovery.written_back.value() + b.recovery.written_back.value()
        assert written >= 2  # alice and carol, by whichever instance came first
        assert "lost or replaced its data" in (a.loss_note() or "")
    # An instance started afterwards refuses them too.
    async with mirrors(losing) as (late,):
        assert await late.is_revoked(alice) is not None
        assert await late.is_revoked(carol) is not None


async def test_a_revocation_made_elsewhere_after_the_loss_reaches_every_instance(losing):
    dave = principal("dave")
    async with mirrors(losing, 2) as (a, b):
        await a.revoke_subject("zed", before=time.time())
        assert await eventually(lambda: _all_refuse([b], principal("zed")))
        await losing.lose()
        # Another process (the CLI) writes to the store that lost everything.
        other = losing.open()
        await other.revoke_subject("dave", before=time.time())
        await other.close()
        assert await eventually(lambda: _all_refuse([a, b], dave))


async def test_a_store_set_back_to_an_older_state_is_noticed_by_its_counter(losing):
    early, late = principal("early"), principal("late")
    async with mirrors(losing, 2) as (a, b):
        await a.revoke_subject("early", before=time.time())
        await losing.snapshot()
        await a.revoke_subject("late", before=time.time())
        assert await eventually(lambda: _all_refuse([a, b], early, late))

        await losing.set_back()
        # New changes are numbered as "late" was: a mirror trusting its cursor would skip them.
        other = losing.open()
        await other.revoke_subject("fresh", before=time.time())
        await other.close()

        assert await eventually(lambda: _all_refuse([a, b], early, late, principal("fresh")))
        assert await eventually(lambda: _stored_all(losing, early, late, principal("fresh")))
        for mirror in (a, b):
            assert sum(mirror.recovery.reloads.value(r) for r in REASONS) >= 1


@pytest.mark.parametrize("first", ["the one that saw it", "the one that did not"])
async def test_an_unrevocation_seen_by_any_running_instance_is_not_undone(losing, first):
    erin = principal("erin")
    async with mirrors(losing, 2) as (a, b):
        entry = await a.revoke_subject("erin", before=time.time())
        assert await eventually(lambda: _all_refuse([b], erin))
        # b stops following (a slow poll): it still holds erin as revoked when a
        # un-revokes her; then the store loses everything.
        b.poll_interval = a.poll_interval = 3600
        await asyncio.sleep(POLL * 3)
        await a.unrevoke(entry.id)
        assert await a.is_revoked(erin) is None
        assert await b.is_revoked(erin) is not None
        await losing.lose()

        # Each writes back what it held, in either order: a the un-revocation (the later
        # change of the lost feed), b the revocation. The later one stands.
        order = (a, b) if first == "the one that saw it" else (b, a)
        for mirror in order:
            await mirror.sync()
            assert await eventually(lambda m=mirror: _settled(m))
        await b.sync()
        assert await _none_refuse([a, b], erin)
        assert not await stored(losing, erin)


async def test_expired_entries_and_the_store_s_own_later_unrevocations_are_not_written_back(
    losing,
):
    fay, gus = principal("fay", "jf"), principal("gus")
    async with mirrors(losing) as (a,):
        await a.revoke_token("jf", issuer=ISS, expires_at=time.time() - 30.5)  # lives ~0.5 s
        await a.revoke_subject("gus", before=time.time())
        await asyncio.sleep(0.6)
        a.poll_interval = 3600  # the store changes twice before a looks again
        await asyncio.sleep(POLL * 3)
        await losing.lose()
        other = losing.open()
        mine = await other.revoke_subject("gus", before=time.time())
        await other.unrevoke(mine.id)  # gus un-revoked after the loss, on purpose
        await other.close()

        await a.sync()
        assert await eventually(lambda: _settled(a))
        assert await _none_refuse([a], gus)
        assert not await stored(losing, fay)
        assert not await stored(losing, gus)


async def _settled(mirror: RevocationMirror) -> bool:
    """The mirror has written back all it held, and follows the store alone again."""
    return not mirror.recovery.busy


async def _all_refuse(mirrors: list[RevocationMirror], *who: Principal) -> bool:
    return all([await m.is_revoked(p) is not None for m in mirrors for p in who])


async def _none_refuse(mirrors: list[RevocationMirror], *who: Principal) -> bool:
    return all([await m.is_revoked(p) is None for m in mirrors for p in who])


async def _stored_all(losing: Losing, *who: Principal) -> bool:
    return all([await stored(losing, p) for p in who])


async def _none_stored(losing: Losing, *who: Principal) -> bool:
    return not any([await stored(losing, p) for p in who])
