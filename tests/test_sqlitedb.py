"""The one way jotguard opens an SQLite file, shared by every SQLite store."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from backends.sqlitedb import open_connection


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
