"""The revocation SQLite file's tables, their migration, and the statements the store shares."""

# Queries are assembled only from this module's constants and "?" placeholders.
# ruff: noqa: S608

from __future__ import annotations

import secrets
import sqlite3

from backends.revocation.base import AuditRecord, Change, EntryKey, Revocation, entry_from
from backends.storage.sqlite import transaction

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

COLUMNS = "id, kind, value, issuer, cutoff, expires_at, created_at, reason, actor, seq, removed"
STATE_COLUMNS = COLUMNS + ", origin, origin_seq"


def state_of(row: sqlite3.Row) -> Change:
    origin = (row["origin"], row["origin_seq"]) if row["origin"] is not None else None
    return Change(row["seq"], entry_from(row), bool(row["removed"]), origin)


def prepare(conn: sqlite3.Connection) -> None:
    """The store's runners' setup: rows by column name, and the file up to the schema."""
    conn.row_factory = sqlite3.Row
    if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
        migrate(conn)


def migrate(conn: sqlite3.Connection) -> None:
    with transaction(conn):
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


def next_seq(conn: sqlite3.Connection) -> int:
    conn.execute("UPDATE revocation_meta SET value = value + 1 WHERE name = 'seq'")
    seq: int = conn.execute("SELECT value FROM revocation_meta WHERE name = 'seq'").fetchone()[0]
    return seq


def add_audit(conn: sqlite3.Connection, record: AuditRecord) -> None:
    conn.execute(
        "INSERT INTO revocation_audit (at, action, entry_id, kind, value, issuer, actor, reason)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            record.at,
            record.action,
            record.entry_id,
            record.kind,
            record.value,
            record.issuer or "",
            record.actor,
            record.reason,
        ),
    )


def put_state(
    conn: sqlite3.Connection,
    entry: Revocation,
    *,
    removed: bool = False,
    origin: tuple[str, int] | None = None,
) -> None:
    """The key's state, under the next change number (a write by this store: no origin)."""
    mark = origin or (None, None)
    conn.execute(
        f"INSERT OR REPLACE INTO revocation_entries ({STATE_COLUMNS})"
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
            next_seq(conn),
            int(removed),
            *mark,
        ),
    )


def select_state(conn: sqlite3.Connection, key: EntryKey) -> Change | None:
    kind, issuer, value = key
    row = conn.execute(
        f"SELECT {STATE_COLUMNS} FROM revocation_entries"
        " WHERE kind = ? AND issuer = ? AND value = ?",
        (kind, issuer or "", value),
    ).fetchone()
    return state_of(row) if row is not None else None


def select_live(conn: sqlite3.Connection, key: EntryKey) -> Revocation | None:
    state = select_state(conn, key)
    return state.entry if state is not None and not state.removed else None
