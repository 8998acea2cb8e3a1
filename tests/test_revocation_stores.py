"""What each store promises beyond the shared contract: its storage details and its outages."""

from __future__ import annotations

import asyncio
import math
import os
import sqlite3
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from backends.errors import BackendUnavailable
from backends.principal import Principal
from backends.revocation.base import Change, Revocation
from backends.revocation.factory import open_store
from backends.revocation.mongo import MongoRevocationStore
from backends.revocation.policy import merge
from backends.revocation.redis import RedisRevocationStore
from backends.revocation.redis_layout import key_member
from backends.revocation.sqlite import SQLiteRevocationStore
from backends.storage.urls import redact
from tests.conftest import redis_url, require_service
from tests.redis_keys import delete_prefix, reachable
from tests.revocation_stores import Clock, open_test_store

ISS = "http://jotguard.test/"


def principal(sub="alice", jti="j1"):
    now = int(time.time())
    return Principal(sub, ISS, jti, now + 60, now, "app")


async def every_call(store):
    """Each store method once, as a list of coroutines to await."""
    return [
        store.is_revoked(principal()),
        store.revoke_token("j1", issuer=ISS, expires_at=time.time() + 60),
        store.revoke_subject("alice", before=time.time()),
        store.revoke_client("app", before=time.time()),
        store.unrevoke("some-id"),
        store.list_entries(),
        store.changes(0),
        store.audit_log(),
        store.ping(),
        store.restore([Change(1, Revocation("", "sub", "bob", None, 1.0, 2e9, 0.0))], origin="e"),
    ]


async def assert_unavailable(store, only=None):
    calls = await every_call(store)
    for n, call in enumerate(calls):
        if only is not None and n not in only:
            call.close()
            continue
        with pytest.raises(BackendUnavailable):
            await call


# -- SQLite ---------------------------------------------------------------------------------


async def test_sqlite_file_is_private_in_wal_mode_and_survives_reopening(tmp_path):
    path = tmp_path / "data" / "revocations.sqlite3"
    store = SQLiteRevocationStore(path)
    entry = await store.revoke_token("j1", issuer=ISS, expires_at=time.time() + 60)
    await store.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    reopened = SQLiteRevocationStore(path)
    try:
        assert await reopened.is_revoked(principal()) is not None
        assert [e.id for e in (await reopened.list_entries()).entries] == [entry.id]
    finally:
        await reopened.close()


async def test_sqlite_writers_in_two_processes_share_one_history(tmp_path):
    # Two store objects on one file stand for the server and the CLI.
    path = tmp_path / "revocations.sqlite3"
    server, cli = SQLiteRevocationStore(path), SQLiteRevocationStore(path)
    try:
        await asyncio.gather(
            *(server.revoke_subject(f"s{n}", before=time.time()) for n in range(10)),
            *(cli.revoke_client(f"c{n}", before=time.time()) for n in range(10)),
        )
        batch = await server.changes(0)
        assert [c.seq for c in batch.changes] == list(range(1, 21))
        assert await server.is_revoked(Principal("s3", ISS, "x", 0, 0, "c7")) is not None
    finally:
        await server.close()
        await cli.close()


async def test_sqlite_purges_expired_entries_on_write(tmp_path):
    clock = Clock()
    path = tmp_path / "revocations.sqlite3"
    store = SQLiteRevocationStore(path, clock=clock, leeway=0)
    try:
        await store.revoke_token("old", issuer=ISS, expires_at=clock.now + 10)
        clock.advance(11)
        await store.revoke_token("new", issuer=ISS, expires_at=clock.now + 10)
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        values = [r[0] for r in conn.execute("SELECT value FROM revocation_entries")]
    assert values == ["new"]


async def test_sqlite_unusable_path_is_unavailable_not_a_crash(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    store = SQLiteRevocationStore(blocker / "revocations.sqlite3")
    try:
        await assert_unavailable(store)
    finally:
        await store.close()


async def test_sqlite_work_runs_off_the_event_loop_thread(tmp_path, monkeypatch):
    import threading

    import backends.revocation.sqlite as module

    threads = set()
    real_connect = sqlite3.connect

    def spy(*args, **kwargs):
        threads.add(threading.current_thread())
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(module.sqlite3, "connect", spy)
    store = SQLiteRevocationStore(tmp_path / "r.sqlite3")
    try:
        await store.revoke_subject("alice", before=time.time())
        await store.is_revoked(principal())
    finally:
        await store.close()
    assert threads
    assert threading.current_thread() not in threads


# -- Redis ----------------------------------------------------------------------------------


@pytest.mark.redis
async def test_redis_entries_expire_by_themselves_at_their_expiry(tmp_path):
    async with open_test_store("redis", tmp_path, Clock()) as store:
        assert isinstance(store, RedisRevocationStore)
        entry = await store.revoke_subject("alice", before=time.time())
        name = store.prefix + "entry:" + key_member(entry.key)
        assert await store.redis.expiretime(name) == math.ceil(entry.expires_at)
        assert await store.redis.expiretime(store.prefix + "id:" + entry.id) == math.ceil(
            entry.expires_at
        )


@pytest.mark.redis
async def test_redis_two_clients_racing_keep_the_latest_cutoff(tmp_path):
    async with open_test_store("redis", tmp_path, Clock()) as first:
        assert isinstance(first, RedisRevocationStore)
        second = RedisRevocationStore(Redis.from_url(redis_url()), prefix=first.prefix)
        try:
            now = time.time()
            await asyncio.gather(
                *(first.revoke_subject("alice", before=now - 2 * n) for n in range(15)),
                *(second.revoke_subject("alice", before=now - 2 * n - 1) for n in range(15)),
            )
            [entry] = (await first.list_entries()).entries
            assert entry.cutoff == pytest.approx(now)
            seqs = [c.seq for c in (await first.changes(0)).changes]
            assert seqs == [30]  # one key, last of 30 serialised changes
        finally:
            await second.close()


async def test_redis_at_a_closed_port_is_unavailable_fast():
    store = open_store("redis://127.0.0.1:1/0")
    try:
        await assert_unavailable(store)
    finally:
        await store.close()


# -- MongoDB (mongomock-motor: a mock of Motor's API, not a MongoDB server) -----------------


async def test_mongo_indexes_and_ttl_field(tmp_path):
    async with open_test_store("mongo-mock", tmp_path, Clock()) as store:
        assert isinstance(store, MongoRevocationStore)
        entry = await store.revoke_token("j1", issuer=ISS, expires_at=time.time() + 60)
        indexes = await store.entries.index_information()
        assert indexes["one_entry_per_key"]["unique"] is True
        assert [k for k, _ in indexes["one_entry_per_key"]["key"]] == ["kind", "issuer", "value"]
        assert indexes["ttl"]["expireAfterSeconds"] == 0
        doc = await store.entries.find_one({"id": entry.id})
        ttl_at = doc["ttl_at"]
        if ttl_at.tzinfo is None:
            ttl_at = ttl_at.replace(tzinfo=timezone.utc)
        assert ttl_at.timestamp() == pytest.approx(entry.expires_at, abs=0.001)


async def test_mongo_slow_write_is_restamped_for_the_change_feed(tmp_path):
    async with open_test_store("mongo-mock", tmp_path, Clock()) as store:
        assert isinstance(store, MongoRevocationStore)
        entry = await store.revoke_subject("alice", before=time.time())
        doc = await store.entries.find_one({"id": entry.id})
        # As if the write had taken far longer than the settle window.
        await store._restamp_if_slow(doc["_id"], time.monotonic() - 60)
        restamped = await store.entries.find_one({"id": entry.id})
        assert restamped["seq"] > doc["seq"]
        batch = await store.changes(doc["seq"])
        assert [c.entry.id for c in batch.changes] == [entry.id]


async def test_mongo_at_a_closed_port_is_unavailable():
    store = open_store("mongodb://127.0.0.1:1/jotguard?serverSelectionTimeoutMS=50")
    try:
        # pymongo waits about half a second per call: a read, a write and ping suffice.
        await assert_unavailable(store, only={0, 2, 8})
    finally:
        await store.close()


def test_store_urls_are_redacted_in_messages():
    assert redact("redis://:s3cret@h:6379/0") == "redis://:***@h:6379/0"
    assert redact("mongodb://u:s3cret@h/db") == "mongodb://u:***@h/db"
    assert redact("sqlite:///var/r.db") == "sqlite:///var/r.db"


# -- Redis under concurrent writers --------------------------------------------------------------


@pytest.mark.redis
async def test_redis_writers_at_once_all_succeed_and_the_feed_misses_none_of_their_changes():
    """8 writers (each its own connection, as 8 instances) at once, and a follower reading
    the feed as they write: no write refused as "too busy", every change numbered once,
    in the order it became visible, so the follower ends with every entry."""
    require_service("Redis", reachable(redis_url()))
    async with open_test_store("redis", None, Clock(time.time())) as first:
        prefix = first.prefix
        stores = [first] + [
            RedisRevocationStore(Redis.from_url(redis_url()), prefix=prefix) for _ in range(7)
        ]
        seen: dict[tuple, int] = {}
        writing = True

        async def follow() -> None:
            cursor = 0
            while writing or cursor < await _head(first):
                batch = await first.changes(cursor)
                for change in batch.changes:
                    seen[change.entry.key] = change.seq
                cursor = batch.cursor

        async def write(n: int, store: RedisRevocationStore) -> None:
            for i in range(50):
                await store.revoke_subject(f"user-{n}-{i}", before=time.time())
                # Everyone also revokes one shared subject: same-entry writers converge too.
                await store.revoke_subject("everyone", before=time.time() + n)

        started = time.time()
        follower = asyncio.create_task(follow())
        try:
            await asyncio.gather(*(write(n, s) for n, s in enumerate(stores)))
        finally:
            writing = False
            await follower
            for store in stores[1:]:
                await store.close()
        feed = []
        cursor = 0
        while batch := await first.changes(cursor):
            if not batch.changes:
                break
            feed.extend(batch.changes)
            cursor = batch.cursor
        assert await _head(first) == 8 * 50 * 2  # every write took one number
        assert len({c.entry.key for c in feed}) == 8 * 50 + 1
        assert len(seen) == 8 * 50 + 1  # the follower missed nothing
        everyone = await first.list_entries(limit=500)
        [shared] = [e for e in everyone.entries if e.value == "everyone"]
        assert shared.cutoff == pytest.approx(started + 7, abs=5)  # the latest of them
        assert shared.cutoff >= started + 7


async def _head(store: RedisRevocationStore) -> int:
    return (await store.changes(2**62)).head


_texts = st.text(max_size=40)
# After now: Redis expires the keys by its own clock (EXAT).
_times = st.floats(min_value=time.time() + 3600, max_value=time.time() + 3e8, allow_nan=False)


@pytest.fixture(scope="module")
def merge_prefix() -> Iterator[str]:
    """The merge test's keys, under one prefix deleted once: a SCAN per example would walk
    the whole shared DB (other runs' keys too) 150 times."""
    prefix = f"jotguard-test:{uuid.uuid4().hex}:"
    yield prefix
    if reachable(redis_url()):

        async def delete() -> None:
            client = Redis.from_url(redis_url())
            await delete_prefix(client, prefix)
            await client.aclose()

        asyncio.run(delete())


@pytest.mark.redis
@settings(max_examples=150, deadline=None)
@given(
    existing=st.one_of(
        st.none(),
        st.tuples(
            st.one_of(st.none(), _times),  # cutoff
            _times,  # expires_at
            st.booleans(),  # removed
            st.one_of(st.none(), _texts),  # reason
        ),
    ),
    cutoff=st.one_of(st.none(), _times),
    expires_at=_times,
    value=_texts.filter(bool),
    issuer=st.one_of(st.none(), _texts),
    now=_times,
)
def test_the_redis_merge_script_decides_as_policy_merge(
    merge_prefix, existing, cutoff, expires_at, value, issuer, now
):
    """The revoke script merges in Lua; it must keep what policy.merge keeps, to the bit
    (floats through %.17g, strings through cjson)."""
    require_service("Redis", reachable(redis_url()))
    incoming = Revocation("new-id", "sub", value, issuer, cutoff, expires_at, 5.5, "why", "me")
    old = None
    if existing is not None:
        old_cutoff, old_expiry, removed, reason = existing
        old = (
            Revocation("old-id", "sub", value, issuer, old_cutoff, old_expiry, 1.25, reason, "x"),
            removed,
        )

    async def check() -> None:
        client = Redis.from_url(redis_url())
        store = RedisRevocationStore(client, prefix=f"{merge_prefix}{uuid.uuid4().hex}:")
        try:
            live = None
            if old is not None:
                entry, removed = old
                await store._change("put", key_member(entry.key), entry, now, removed=removed)
                live = None if removed else entry
            merged = await store._write(incoming, now)
            assert merged == merge(live, incoming, now)
            assert isinstance(merged.expires_at, float)
            stored = await store.changes(0)
            assert [c.entry for c in stored.changes] == [merged]
        finally:
            await client.aclose()

    asyncio.run(check())


class _Forgetful:
    """A counters collection whose first upserts answer no document (a server seen to
    do so under concurrent upserts), though each increment applied."""

    def __init__(self, counters, misses: int) -> None:
        self._counters = counters
        self.misses = misses

    def __getattr__(self, name):
        return getattr(self._counters, name)

    async def find_one_and_update(self, *args, **kwargs):
        doc = await self._counters.find_one_and_update(*args, **kwargs)
        if self.misses:
            self.misses -= 1
            return None
        return doc


@pytest.mark.parametrize(("misses", "answered"), [(2, True), (3, False)])
async def test_mongo_counter_reply_without_a_document_is_retried_then_503(
    tmp_path, misses, answered
):
    async with open_test_store("mongo-mock", tmp_path, Clock()) as store:
        assert isinstance(store, MongoRevocationStore)
        await store.ping()
        store.counters = _Forgetful(store.counters, misses)
        if answered:
            entry = await store.revoke_subject("alice", before=time.time())
            assert (await store.list_entries()).entries == [entry]
        else:
            with pytest.raises(BackendUnavailable, match="counter"):
                await store.revoke_subject("alice", before=time.time())


def test_ci_fails_rather_than_skips_the_mongo_suites_without_a_server(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MONGODB_URI"}
    env["JOTGUARD_REQUIRE_SERVICES"] = "1"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            "tests/issuance/test_store_contract.py::test_clients_round_trip",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).parent.parent,
        timeout=120,
        check=False,
    )
    assert run.returncode == 1, run.stdout[-2000:]
    assert "required in CI" in run.stdout


async def test_mongo_epoch_upsert_reply_without_a_document_reads_what_it_left(tmp_path):
    async with open_test_store("mongo-mock", tmp_path, Clock()) as store:
        assert isinstance(store, MongoRevocationStore)
        store.counters = _Forgetful(store.counters, misses=1)
        first = await store.changes(0)
        assert first.epoch  # read back from the counter the upsert wrote
        assert (await store.changes(0)).epoch == first.epoch
