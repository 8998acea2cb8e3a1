"""The one way every SQLite store reaches its file: a connection on its own thread.

The stdlib driver blocks, so each :class:`SQLiteRunner` keeps one connection on one
dedicated thread and the IOLoop never waits on the disk. Its thread also serialises
that connection's writers inside the process; other processes (the CLI beside a
running server) are serialised by SQLite's own lock, waited on up to
``busy_timeout``. A commit returns only once SQLite reports it durable (WAL with
``synchronous=FULL``). A store wanting reads that never queue behind a commit runs
two runners on one file: in WAL mode readers never wait for a writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
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


@contextlib.contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[None]:
    """One write transaction: committed if the block returns, rolled back if it raises."""
    # IMMEDIATE takes the write lock up front: a read-then-write never loses a race, and
    # never deadlocks upgrading a read lock.
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def create_schema(
    schema: str, migrate: Callable[[sqlite3.Connection], None] | None = None
) -> Callable[[sqlite3.Connection], None]:
    """A runner's ``setup`` for tables made by ``CREATE ... IF NOT EXISTS`` (``schema``).

    :param migrate: then run in a write transaction, to bring a file made by an older
        version up to the schema (``ALTER TABLE``); it must be idempotent.
    """

    def setup(connection: sqlite3.Connection) -> None:
        connection.execute("PRAGMA foreign_keys=ON")
        connection.executescript(schema)
        if migrate is not None:
            with transaction(connection):  # one process migrates at a time
                migrate(connection)

    return setup


class SQLiteRunner:
    """Runs callables against one connection to ``path`` on one thread, off the loop.

    The connection opens on first use. It is reopened after an error (the disk may have
    been remounted) and when the file was replaced under it (restored from an older
    copy, deleted and made anew): an open connection would go on using the old file
    unseen.

    :param setup: run on the connection, on its thread, every time it opens (schema,
        migrations, row factory); the connection is closed again if it raises.
    :param name: what the store is called in the error a failed call raises.
    :param thread_name: the thread's name, as ``ps`` and thread dumps show it.
    """

    def __init__(
        self,
        path: Path,
        *,
        setup: Callable[[sqlite3.Connection], None] | None = None,
        busy_timeout: float = BUSY_TIMEOUT_SECONDS,
        name: str = "SQLite store",
        thread_name: str = "jotguard-sqlite",
    ) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.name = name
        self._setup = setup
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)
        self._connection: sqlite3.Connection | None = None
        self._file_identity: tuple[int, int] | None = None
        self._closed = False

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on the connection as it is (autocommit: each statement on its own)."""
        return await self._run(self._call, fn)

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one transaction; returns after the commit is durable."""
        return await self._run(self._call_in_transaction, fn)

    async def _run(
        self,
        call: Callable[[Callable[[sqlite3.Connection], T]], T],
        fn: Callable[[sqlite3.Connection], T],
    ) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, call, fn)
        except sqlite3.IntegrityError:
            raise  # a constraint the caller set: its answer, not an outage
        except (sqlite3.Error, OSError) as exc:
            raise BackendUnavailable(
                f"The {self.name} cannot answer ({type(exc).__name__})"
            ) from exc

    # -- on the runner's thread ---------------------------------------------------------

    def _call_in_transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def in_transaction(connection: sqlite3.Connection) -> T:
            with transaction(connection):
                return fn(connection)

        return self._call(in_transaction)

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._connection is not None and self._file_replaced():
            self._close()
        if self._connection is None:
            self._connection = self._open()
        try:
            return fn(self._connection)
        except sqlite3.IntegrityError:
            raise  # rolled back; the connection is sound
        except sqlite3.Error:
            # Reopen next time: the file may have been replaced or the disk remounted.
            self._close()
            raise

    def _file_replaced(self) -> bool:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return True
        return (stat.st_dev, stat.st_ino) != self._file_identity

    def _open(self) -> sqlite3.Connection:
        connection = open_connection(self.path, self.busy_timeout)
        try:
            stat = os.stat(self.path)
            self._file_identity = (stat.st_dev, stat.st_ino)
            if self._setup is not None:
                self._setup(connection)
        except BaseException:
            connection.close()
            raise
        return connection

    def _close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(sqlite3.Error):
                self._connection.close()
            self._connection = None

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=False)
