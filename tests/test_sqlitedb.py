"""How every SQLite store opens its file and runs its statements: one way, off the loop."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import threading
import time

import pytest

from backends.catchphrases.sqlite import SQLiteCatchphraseStore
from backends.errors import BackendUnavailable
from backends.issuance.sqlite import SQLiteIssuanceStore
from backends.revocation.sqlite import SQLiteRevocationStore
from backends.storage.sqlite import SQLiteRunner, open_connection


def test_processes_opening_a_new_file_together_all_get_wal(tmp_path):
    # The server and the CLI can open a fresh file at the same moment; switching it
    # to WAL then fails at once on one side unless the opener retries.
    failures: list[str] = []

    def open_and_write(path):
        try:
            conn = open_connection(path, busy_timeout=5.0)
            try:
                assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
                conn.execute("CREATE TABLE IF NOT EXISTS t (x)")
            finally:
                conn.close()
        except sqlite3.Error as exc:
            failures.append(str(exc))

    for trial in range(100):
        path = tmp_path / f"trial-{trial}.sqlite3"
        threads = [threading.Thread(target=open_and_write, args=(path,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []


def test_a_lock_held_past_the_busy_timeout_is_an_error_not_a_hang(tmp_path):
    path = tmp_path / "held.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            open_connection(path, busy_timeout=0.2)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_the_file_is_created_private(tmp_path):
    path = tmp_path / "sub" / "private.sqlite3"
    open_connection(path).close()
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700


# -- the runner every SQLite store calls through --------------------------------------------


def counter_schema(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER UNIQUE)")


async def test_a_call_waiting_on_a_lock_leaves_the_loop_running(tmp_path):
    path = tmp_path / "busy.sqlite3"
    runner = SQLiteRunner(path, setup=counter_schema, busy_timeout=5.0)
    await runner.read(lambda conn: None)  # made, and WAL, before another holds the lock
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    # The holder lets go only from the loop: were the write on the loop's thread, it
    # would wait out the whole busy timeout and fail.
    asyncio.get_running_loop().call_later(0.3, holder.execute, "ROLLBACK")
    try:
        await runner.write(lambda conn: conn.execute("INSERT INTO t VALUES (1)"))
    finally:
        ticker.cancel()
        holder.close()
        await runner.close()
    assert ticks >= 10


async def test_a_write_is_one_transaction_and_a_constraint_is_the_callers_to_handle(tmp_path):
    runner = SQLiteRunner(tmp_path / "t.sqlite3", setup=counter_schema)

    def insert_twice(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t VALUES (2)")
        conn.execute("INSERT INTO t VALUES (1)")

    try:
        await runner.write(lambda conn: conn.execute("INSERT INTO t VALUES (1)"))
        with pytest.raises(sqlite3.IntegrityError):
            await runner.write(insert_twice)
        rows = await runner.read(lambda conn: conn.execute("SELECT x FROM t").fetchall())
    finally:
        await runner.close()
    assert rows == [(1,)]


async def test_a_failing_file_is_unavailable_and_served_again_once_it_is_back(tmp_path):
    path = tmp_path / "gone.sqlite3"
    runner = SQLiteRunner(path, setup=counter_schema, name="test store")
    try:
        await runner.write(lambda conn: conn.execute("INSERT INTO t VALUES (1)"))
        with pytest.raises(BackendUnavailable, match="The test store cannot answer"):
            await runner.read(lambda conn: conn.execute("SELECT nonsense FROM nowhere"))
        assert await runner.read(lambda conn: conn.execute("SELECT x FROM t").fetchall()) == [(1,)]
    finally:
        await runner.close()


async def test_a_file_replaced_under_the_runner_is_the_one_it_reads_next(tmp_path):
    path = tmp_path / "replaced.sqlite3"
    runner = SQLiteRunner(path, setup=counter_schema)
    try:
        await runner.write(lambda conn: conn.execute("INSERT INTO t VALUES (1)"))
        for leftover in tmp_path.glob("replaced.sqlite3*"):
            leftover.unlink()
        other = open_connection(path)
        other.execute("CREATE TABLE t (x INTEGER UNIQUE)")
        other.execute("INSERT INTO t VALUES (7)")
        other.close()
        rows = await runner.read(lambda conn: conn.execute("SELECT x FROM t").fetchall())
    finally:
        await runner.close()
    assert rows == [(7,)]


async def test_every_sqlite_store_runs_its_statements_off_the_loop(tmp_path, monkeypatch):
    threads: set[str] = set()

    class Spy(sqlite3.Connection):
        def execute(self, *args, **kwargs):
            threads.add(threading.current_thread().name)
            return super().execute(*args, **kwargs)

        def executescript(self, *args, **kwargs):
            threads.add(threading.current_thread().name)
            return super().executescript(*args, **kwargs)

    real_connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", functools.partial(real_connect, factory=Spy))
    revocations = SQLiteRevocationStore(tmp_path / "r.sqlite3")
    issuance = SQLiteIssuanceStore(tmp_path / "i.sqlite3")
    catchphrases = SQLiteCatchphraseStore(tmp_path / "c.sqlite3")
    try:
        await revocations.revoke_subject("alice", before=time.time())
        await revocations.changes(0)
        await issuance.purge_expired(now=time.time())
        await issuance.list_clients()
        await catchphrases.list(limit=10)
        await catchphrases.get("missing")
    finally:
        await revocations.close()
        await issuance.close()
        await catchphrases.close()
    assert threads
    assert threading.current_thread().name not in threads
    assert all(name.startswith("jotguard-sqlite") for name in threads)


async def test_closing_twice_is_harmless(tmp_path):
    runner = SQLiteRunner(tmp_path / "c.sqlite3", setup=counter_schema)
    await runner.read(lambda conn: None)
    await runner.close()
    await runner.close()
