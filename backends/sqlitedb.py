"""One SQLite connection on its own thread, so the IOLoop never waits on the disk.

Every call runs on a single dedicated thread, which also serialises writers
inside the process; other processes (the CLI beside a running server) are
serialised by SQLite's own lock, waited on up to ``busy_timeout``. A commit
returns only once SQLite reports it durable (WAL with ``synchronous=FULL``).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from backends.errors import BackendUnavailable

T = TypeVar("T")

BUSY_TIMEOUT_SECONDS = 5.0


def open_connection(path: Path, busy_timeout: float = BUSY_TIMEOUT_SECONDS) -> sqlite3.Connection:
    """Open ``path`` in WAL mode with durable commits, creating it 0600 if need be.

    The connection may be used from another thread than the one that opened it,
    but by one thread at a time.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Created 0600 before SQLite does (it would honour the umask); its WAL and
    # shared-memory files then take the same mode.
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    connection = sqlite3.connect(
        path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
    )
    try:
        _enable_wal(connection, busy_timeout)
        connection.execute("PRAGMA synchronous=FULL")
    except BaseException:
        connection.close()
        raise
    return connection


def _enable_wal(connection: sqlite3.Connection, busy_timeout: float) -> None:
    # Switching to WAL while another process opens the same new file can fail with
    # "database is locked" at once: SQLite skips the busy handler there to avoid a
    # deadlock. The server and the CLI do open the file together, so retry until
    # the busy timeout, as SQLite would for any other lock.
    deadline = time.monotonic() + busy_timeout
    pause = 0.001
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "database is locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


class SQLiteDatabase:
    """Runs callables against one connection on one thread.

    :param schema: SQL script run once when the connection opens (``CREATE ... IF NOT EXISTS``).
    :param migrate: then run in a write transaction, to bring a file made by an older
        version up to the schema (``ALTER TABLE``); it must be idempotent.
    """

    def __init__(
        self,
        path: Path,
        schema: str,
        *,
        migrate: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        self.path = path
        self._schema = schema
        self._migrate = migrate
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jotguard-sqlite")
        self._connection: sqlite3.Connection | None = None
        self._closed = False

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = open_connection(self.path)
            try:
                connection.execute("PRAGMA foreign_keys=ON")
                connection.executescript(self._schema)
                if self._migrate is not None:
                    connection.execute("BEGIN IMMEDIATE")  # one process migrates at a time
                    try:
                        self._migrate(connection)
                    except BaseException:
                        connection.execute("ROLLBACK")
                        raise
                    connection.execute("COMMIT")
            except BaseException:
                connection.close()
                raise
            self._connection = connection
        return self._connection

    def _call(self, fn: Callable[[sqlite3.Connection], T], write: bool) -> T:
        connection = self._connect()
        if not write:
            return fn(connection)
        # IMMEDIATE takes the write lock up front: a read-then-write never loses a race.
        connection.execute("BEGIN IMMEDIATE")
        try:
            result = fn(connection)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        return result

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._run(fn, write=False)

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one transaction; returns after the commit is durable."""
        return await self._run(fn, write=True)

    async def _run(self, fn: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._call, fn, write)
        except sqlite3.IntegrityError:
            raise
        except (sqlite3.OperationalError, sqlite3.DatabaseError, OSError) as exc:
            raise BackendUnavailable(
                f"The SQLite store cannot answer ({type(exc).__name__})"
            ) from exc

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=False)
