"""The embedded default: an SQLite file in the data directory, in WAL mode.

The stdlib driver blocks, so each connection lives on its own thread (a
:class:`~backends.storage.sqlite.SQLiteRunner`): one for reads (the per-request check), one
for writes. In WAL mode readers never wait for
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

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from backends.revocation.base import (
    AuditPage,
    Change,
    ChangeBatch,
    EntryKey,
    Page,
    Revocation,
    audit_of,
    audit_record_from,
    entry_from,
)
from backends.revocation.core import StoreBase, clamp_limit, parse_cursor
from backends.revocation.policy import merge
from backends.revocation.sqlite_schema import (
    COLUMNS,
    STATE_COLUMNS,
    add_audit,
    next_seq,
    prepare,
    put_state,
    select_live,
    select_state,
    state_of,
)
from backends.revocation.writeback import RESTORED_BY, restoration
from backends.storage.sqlite import SQLiteRunner


class SQLiteRevocationStore(StoreBase):
    durable = True

    def __init__(self, path: Path, *, busy_timeout: float = 5.0, **options: Any) -> None:
        super().__init__(**options)
        self.path = path
        self._reader, self._writer = (
            SQLiteRunner(
                path,
                setup=prepare,
                busy_timeout=busy_timeout,
                name="revocation store",
                thread_name=f"jotguard-sqlite-{role}",
            )
            for role in ("read", "write")
        )

    async def _write(self, incoming: Revocation, now: float) -> Revocation:
        def write(conn: sqlite3.Connection) -> Revocation:
            conn.execute("DELETE FROM revocation_entries WHERE expires_at <= ?", (now,))
            entry = merge(select_live(conn, incoming.key), incoming, now)
            put_state(conn, entry)
            add_audit(conn, audit_of("revoke", entry, now, incoming.actor, incoming.reason))
            return entry

        return await self._writer.write(write)

    async def _restore(self, states: list[Change], origin: str, now: float) -> int:
        def restore(conn: sqlite3.Connection) -> int:
            written = 0
            for offered in states:
                keep = restoration(select_state(conn, offered.entry.key), offered, origin, now)
                if keep is None:
                    continue
                put_state(conn, keep.entry, removed=keep.removed, origin=keep.origin)
                if not keep.removed:
                    add_audit(conn, audit_of("restore", keep.entry, now, RESTORED_BY, None))
                written += 1
            return written

        return await self._writer.write(restore)

    async def _fetch(self, keys: Sequence[EntryKey]) -> list[Revocation]:
        where = " OR ".join(["(kind = ? AND issuer = ? AND value = ?)"] * len(keys))
        params = [p for kind, issuer, value in keys for p in (kind, issuer or "", value)]

        def fetch(conn: sqlite3.Connection) -> list[Revocation]:
            rows = conn.execute(
                f"SELECT {COLUMNS} FROM revocation_entries WHERE removed = 0 AND ({where})",
                params,
            ).fetchall()
            return [entry_from(row) for row in rows]

        return await self._reader.read(fetch)

    async def unrevoke(
        self, entry_id: str, *, reason: str | None = None, actor: str | None = None
    ) -> Revocation | None:
        now = self.clock()

        def remove(conn: sqlite3.Connection) -> Revocation | None:
            row = conn.execute(
                f"SELECT {COLUMNS} FROM revocation_entries"
                " WHERE id = ? AND removed = 0 AND expires_at > ?",
                (entry_id, now),
            ).fetchone()
            if row is None:
                return None
            entry = entry_from(row)
            conn.execute(
                "UPDATE revocation_entries SET removed = 1, seq = ? WHERE id = ?",
                (next_seq(conn), entry_id),
            )
            add_audit(conn, audit_of("unrevoke", entry, now, actor, reason))
            return entry

        return await self._writer.write(remove)

    async def list_entries(self, *, limit: int = 50, cursor: str | None = None) -> Page:
        before = parse_cursor(cursor)
        size = clamp_limit(limit)
        now = self.clock()

        def select(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            return conn.execute(
                f"SELECT {COLUMNS} FROM revocation_entries"
                " WHERE removed = 0 AND expires_at > ? AND seq < ? ORDER BY seq DESC LIMIT ?",
                (now, before if before is not None else 2**63 - 1, size + 1),
            ).fetchall()

        rows = await self._reader.read(select)
        page = rows[:size]
        more = len(rows) > size
        return Page([entry_from(r) for r in page], str(page[-1]["seq"]) if more else None)

    async def changes(self, cursor: int = 0, *, limit: int = 500) -> ChangeBatch:
        Read = tuple[list[sqlite3.Row], dict[str, int], sqlite3.Row | None]

        def select(conn: sqlite3.Connection) -> Read:
            conn.execute("BEGIN")  # one snapshot: the page, the counter and the epoch
            try:
                rows = conn.execute(
                    f"SELECT {STATE_COLUMNS} FROM revocation_entries"
                    " WHERE seq > ? ORDER BY seq LIMIT ?",
                    (cursor, clamp_limit(limit)),
                ).fetchall()
                meta = dict(conn.execute("SELECT name, value FROM revocation_meta").fetchall())
                at_cursor = conn.execute(
                    f"SELECT {STATE_COLUMNS} FROM revocation_entries WHERE seq = ?", (cursor,)
                ).fetchone()
            finally:
                conn.execute("COMMIT")
            return rows, meta, at_cursor

        rows, meta, at_cursor = await self._reader.read(select)
        changes = [state_of(r) for r in rows]
        return ChangeBatch(
            changes,
            changes[-1].seq if changes else cursor,
            str(meta.get("epoch", "")),
            int(meta.get("seq", 0)),
            state_of(at_cursor) if at_cursor is not None else None,
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

        rows = await self._reader.read(select)
        page = rows[:size]
        records = [audit_record_from(r) for r in page]
        return AuditPage(records, str(page[-1]["seq"]) if len(rows) > size else None)

    async def ping(self) -> None:
        await self._reader.read(lambda conn: conn.execute("SELECT 1").fetchone())

    async def data_version(self) -> int:
        """SQLite's ``PRAGMA data_version`` on the reading connection: it moves whenever
        another connection (this store's writer, another process's) has committed."""
        version = await self._reader.read(
            lambda conn: conn.execute("PRAGMA data_version").fetchone()[0]
        )
        return int(version)

    async def close(self) -> None:
        await self._reader.close()
        await self._writer.close()
