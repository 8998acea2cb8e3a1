"""The embedded default: an SQLite file in the data directory, in WAL mode.

The stdlib driver blocks, so each connection lives on its own thread: one for
reads (the per-request check), one for writes. In WAL mode readers never wait for
a writer, so a CLI revocation committing beside the server cannot stall requests.
Commits use ``synchronous=FULL``: a revocation acknowledged is on disk.

The feed's epoch is written when the file's schema is created. A file replaced under a
running server (restored from an older copy, deleted and created anew) is noticed on
the next call, which reopens the new file: a follower then sees its epoch, or its change
counter below the follower's cursor, and reloads.
"""

# Queries are assembled only from this module's constants and "?" placeholders.
# ruff: noqa: S608

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import secrets
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from backends.errors import BackendUnavailable
from backends.revocation.base import (
    AuditAction,
    AuditPage,
    AuditRecord,
    Change,
    ChangeBatch,
    EntryKey,
    Page,
    Revocation,
)
from backends.revocation.core import StoreBase, clamp_limit, parse_cursor
from backends.revocation.policy import merge
from backends.revocation.writeback import RESTORED_BY, restoration
from backends.sqlitedb import open_connection

T = TypeVar("T")

SCHEMA_VERSION = 2

# Issuer '' stands for "every issuer" (None): NULLs never collide in a primary key.
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS revocation_entries (
        kind TEXT NOT NULL,
        issuer TEXT NOT NULL,
        value TEXT NOT NULL,
        id TEXT NOT NULL UNIQUE,
        cutoff REAL,
        expires_at REAL NOT NULL,
        created_at REAL NOT NULL,
        reason TEXT,
        actor TEXT,
        seq INTEGER NOT NULL UNIQUE,
        removed INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (kind, issuer, value)
    )""",
    "CREATE INDEX IF NOT EXISTS revocation_entries_expiry ON revocation_entries (expires_at)",
    """CREATE TABLE IF NOT EXISTS revocation_audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        action TEXT NOT NULL,
        entry_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        value TEXT NOT NULL,
        issuer TEXT NOT NULL,
        actor TEXT,
        reason TEXT
    )""",
    # The change counter lives apart from the entries: purging the newest entry must
    # never let a change number be handed out twice.
    "CREATE TABLE IF NOT EXISTS revocation_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO revocation_meta (name, value) VALUES ('seq', 0)",
)
# Version 2: where a state written back came from (see backends.revocation.writeback).
_ORIGINS = (
    "ALTER TABLE revocation_entries ADD COLUMN origin TEXT",
    "ALTER TABLE revocation_entries ADD COLUMN origin_seq INTEGER",
)

_COLUMNS = "id, kind, value, issuer, cutoff, expires_at, created_at, reason, actor, seq, removed"
_STATE_COLUMNS = _COLUMNS + ", origin, origin_seq"


def _entry(row: sqlite3.Row) -> Revocation:
    return Revocation(
        id=row["id"],
        kind=row["kind"],
        value=row["value"],
        issuer=row["issuer"] or None,
        cutoff=row["cutoff"],
        expires_at=row["expires_at"],
        created_at=row["created_at"],
        reason=row["reason"],
        actor=row["actor"],
    )


def _state(row: sqlite3.Row) -> Change:
    origin = (row["origin"], row["origin_seq"]) if row["origin"] is not None else None
    return Change(row["seq"], _entry(row), bool(row["removed"]), origin)


def _migrate(conn: sqlite3.Connection) -> None:
    with _transaction(conn):
        # Read again under the write lock: another process may have just migrated.
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version < 1:
            for statement in _SCHEMA:
                conn.execute(statement)
        if version < 2:
            for statement in _ORIGINS:
                conn.execute(statement)
            # The feed's identity: a file made anew gets another one.
            conn.execute(
                "INSERT OR IGNORE INTO revocation_meta (name, value) VALUES ('epoch', ?)",
                (secrets.randbits(62),),
            )
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    # IMMEDIATE takes the write lock up front: no deadlock upgrading a read lock.
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class _Connection:
    """One sqlite3 connection confined to its own thread, opened on first use."""

    def __init__(self, path: Path, name: str, busy_timeout: float) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"jotguard-{name}")
        self.conn: sqlite3.Connection | None = None
        self.file_identity: tuple[int, int] | None = None

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.executor, functools.partial(self._call, fn))
        except (sqlite3.Error, OSError) as exc:
            raise BackendUnavailable(
                f"The revocation store cannot answer ({type(exc).__name__})"
            ) from exc

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self.conn is not None and self._file_replaced():
            # An open connection would go on using the old file (its inode), unseen.
            self._close()
        if self.conn is None:
            self.conn = self._open()
        try:
            return fn(self.conn)
        except sqlite3.Error:
            # Reopen next time: the file may have been replaced or the disk remounted.
            self._close()
            raise

    def _file_replaced(self) -> bool:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return True
        return (stat.st_dev, stat.st_ino) != self.file_identity

    def _open(self) -> sqlite3.Connection:
        conn = open_connection(self.path, self.busy_timeout)
        try:
            stat = os.stat(self.path)
            self.file_identity = (stat.st_dev, stat.st_ino)
            conn.row_factory = sqlite3.Row
            if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                _migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self.conn.close()
            self.conn = None

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.executor, self._close)
        self.executor.shutdown(wait=True)


def _next_seq(conn: sqlite3.Connection) -> int:
    conn.execute("UPDATE revocation_meta SET value = value + 1 WHERE name = 'seq'")
    seq: int = conn.execute("SELECT value FROM revocation_meta WHERE name = 'seq'").fetchone()[0]
    return seq


def _audit(
    conn: sqlite3.Connection,
    action: AuditAction,
    entry: Revocation,
    now: float,
    actor: str | None,
    reason: str | None,
) -> None:
    conn.execute(
        "INSERT INTO revocation_audit (at, action, entry_id, kind, value, issuer, actor, reason)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (now, action, entry.id, entry.kind, entry.value, entry.issuer or "", actor, reason),
    )


def _store(
    conn: sqlite3.Connection,
    entry: Revocation,
    *,
    removed: bool = False,
    origin: tuple[str, int] | None = None,
) -> None:
    """The key's state, under the next change number (a write by this store: no origin)."""
    mark = origin or (None, None)
    conn.execute(
        f"INSERT OR REPLACE INTO revocation_entries ({_STATE_COLUMNS})"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            entry.id,
            entry.kind,
            entry.value,
            entry.issuer or "",
            entry.cutoff,
            entry.expires_at,
            entry.created_at,
            entry.reason,
            entry.actor,
            _next_seq(conn),
            int(removed),
            *mark,
        ),
    )


def _select_state(conn: sqlite3.Connection, key: EntryKey) -> Change | None:
    kind, issuer, value = key
    row = conn.execute(
        f"SELECT {_STATE_COLUMNS} FROM revocation_entries"
        " WHERE kind = ? AND issuer = ? AND value = ?",
        (kind, issuer or "", value),
    ).fetchone()
    return _state(row) if row is not None else None


def _select_key(conn: sqlite3.Connection, key: EntryKey) -> Revocation | None:
    kind, issuer, value = key
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM revocation_entries"
        " WHERE kind = ? AND issuer = ? AND value = ? AND removed = 0",
        (kind, issuer or "", value),
    ).fetchone()
    return _entry(row) if row is not None else None


class SQLiteRevocationStore(StoreBase):
    durable = True

    def __init__(self, path: Path, *, busy_timeout: float = 5.0, **options: Any) -> None:
        super().__init__(**options)
        self.path = path
        self._reader = _Connection(path, "sqlite-read", busy_timeout)
        self._writer = _Connection(path, "sqlite-write", busy_timeout)

    async def _write(self, incoming: Revocation, now: float) -> Revocation:
        def write(conn: sqlite3.Connection) -> Revocation:
            with _transaction(conn):
                conn.execute("DELETE FROM revocation_entries WHERE expires_at <= ?", (now,))
                entry = merge(_select_key(conn, incoming.key), incoming, now)
                _store(conn, entry)
                _audit(conn, "revoke", entry, now, incoming.actor, incoming.reason)
            return entry

        return await self._writer.run(write)

    async def _restore(self, states: list[Change], origin: str, now: float) -> int:
        def restore(conn: sqlite3.Connection) -> int:
            written = 0
            with _transaction(conn):
                for offered in states:
                    keep = restoration(_select_state(conn, offered.entry.key), offered, origin, now)
                    if keep is None:
                        continue
                    _store(conn, keep.entry, removed=keep.removed, origin=keep.origin)
                    if not keep.removed:
                        _audit(conn, "restore", keep.entry, now, RESTORED_BY, None)
                    written += 1
            return written

        return await self._writer.run(restore)

    async def _fetch(self, keys: Sequence[EntryKey]) -> list[Revocation]:
        where = " OR ".join(["(kind = ? AND issuer = ? AND value = ?)"] * len(keys))
        params = [p for kind, issuer, value in keys for p in (kind, issuer or "", value)]

        def fetch(conn: sqlite3.Connection) -> list[Revocation]:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM revocation_entries WHERE removed = 0 AND ({where})",
                params,
            ).fetchall()
            return [_entry(row) for row in rows]

        return await self._reader.run(fetch)

    async def unrevoke(
        self, entry_id: str, *, reason: str | None = None, actor: str | None = None
    ) -> Revocation | None:
        now = self.clock()

        def remove(conn: sqlite3.Connection) -> Revocation | None:
            with _transaction(conn):
                row = conn.execute(
                    f"SELECT {_COLUMNS} FROM revocation_entries"
                    " WHERE id = ? AND removed = 0 AND expires_at > ?",
                    (entry_id, now),
                ).fetchone()
                if row is None:
                    return None
                entry = _entry(row)
                conn.execute(
                    "UPDATE revocation_entries SET removed = 1, seq = ? WHERE id = ?",
                    (_next_seq(conn), entry_id),
                )
                _audit(conn, "unrevoke", entry, now, actor, reason)
            return entry

        return await self._writer.run(remove)

    async def list_entries(self, *, limit: int = 50, cursor: str | None = None) -> Page:
        before = parse_cursor(cursor)
        size = clamp_limit(limit)
        now = self.clock()

        def select(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            return conn.execute(
                f"SELECT {_COLUMNS} FROM revocation_entries"
                " WHERE removed = 0 AND expires_at > ? AND seq < ? ORDER BY seq DESC LIMIT ?",
                (now, before if before is not None else 2**63 - 1, size + 1),
            ).fetchall()

        rows = await self._reader.run(select)
        page = rows[:size]
        more = len(rows) > size
        return Page([_entry(r) for r in page], str(page[-1]["seq"]) if more else None)

    async def changes(self, cursor: int = 0, *, limit: int = 500) -> ChangeBatch:
        Read = tuple[list[sqlite3.Row], dict[str, int], sqlite3.Row | None]

        def select(conn: sqlite3.Connection) -> Read:
            conn.execute("BEGIN")  # one snapshot: the page, the counter and the epoch
            try:
                rows = conn.execute(
                    f"SELECT {_STATE_COLUMNS} FROM revocation_entries"
                    " WHERE seq > ? ORDER BY seq LIMIT ?",
                    (cursor, clamp_limit(limit)),
                ).fetchall()
                meta = dict(conn.execute("SELECT name, value FROM revocation_meta").fetchall())
                at_cursor = conn.execute(
                    f"SELECT {_STATE_COLUMNS} FROM revocation_entries WHERE seq = ?", (cursor,)
                ).fetchone()
            finally:
                conn.execute("COMMIT")
            return rows, meta, at_cursor

        rows, meta, at_cursor = await self._reader.run(select)
        changes = [_state(r) for r in rows]
        return ChangeBatch(
            changes,
            changes[-1].seq if changes else cursor,
            str(meta.get("epoch", "")),
            int(meta.get("seq", 0)),
            _state(at_cursor) if at_cursor is not None else None,
        )

    async def audit_log(self, *, limit: int = 50, cursor: str | None = None) -> AuditPage:
        before = parse_cursor(cursor)
        size = clamp_limit(limit)

        def select(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            return conn.execute(
                "SELECT seq, at, action, entry_id, kind, value, issuer, actor, reason"
                " FROM revocation_audit WHERE seq < ? ORDER BY seq DESC LIMIT ?",
                (before if before is not None else 2**63 - 1, size + 1),
            ).fetchall()

        rows = await self._reader.run(select)
        page = rows[:size]
        records = [
            AuditRecord(
                r["at"],
                r["action"],
                r["entry_id"],
                r["kind"],
                r["value"],
                r["issuer"] or None,
                r["actor"],
                r["reason"],
            )
            for r in page
        ]
        return AuditPage(records, str(page[-1]["seq"]) if len(rows) > size else None)

    async def ping(self) -> None:
        await self._reader.run(lambda conn: conn.execute("SELECT 1").fetchone())

    async def data_version(self) -> int:
        """SQLite's ``PRAGMA data_version`` on the reading connection: it moves whenever
        another connection (this store's writer, another process's) has committed."""
        version = await self._reader.run(
            lambda conn: conn.execute("PRAGMA data_version").fetchone()[0]
        )
        return int(version)

    async def close(self) -> None:
        await self._reader.close()
        await self._writer.close()
