"""The issuance SQLite file's tables, their migration, and the statements the store shares."""

from __future__ import annotations

import sqlite3
from typing import Any

from backends.issuance.base import AccessRecord, Client, Family, RefreshToken, User
from backends.storage.sqlite_table import Table

SCHEMA = """
CREATE TABLE IF NOT EXISTS clients (
    client_id   TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    secret_hash TEXT NOT NULL,
    grant_types TEXT NOT NULL,
    scopes      TEXT NOT NULL,
    created_at  REAL NOT NULL,
    disabled    INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS users (
    user_id       TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS refresh_families (
    family_id      TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL,
    subject        TEXT NOT NULL,
    created_at     REAL NOT NULL,
    expires_at     REAL NOT NULL,
    revoked_at     REAL,
    access_revoked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS refresh_families_subject ON refresh_families (subject);
CREATE INDEX IF NOT EXISTS refresh_families_client ON refresh_families (client_id);
CREATE INDEX IF NOT EXISTS refresh_families_expires ON refresh_families (expires_at);
CREATE TABLE IF NOT EXISTS refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    family_id  TEXT NOT NULL REFERENCES refresh_families (family_id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL,
    subject    TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    issued_at  REAL NOT NULL,
    expires_at REAL NOT NULL,
    used_at    REAL,
    jkt        TEXT
);
CREATE INDEX IF NOT EXISTS refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX IF NOT EXISTS refresh_tokens_expires ON refresh_tokens (expires_at);
CREATE TABLE IF NOT EXISTS family_access_tokens (
    family_id  TEXT NOT NULL REFERENCES refresh_families (family_id) ON DELETE CASCADE,
    jti        TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (family_id, jti)
);
"""


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def migrate(db: sqlite3.Connection) -> None:
    # Files made before clients could be disabled.
    if "disabled" not in _columns(db, "clients"):
        db.execute("ALTER TABLE clients ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0")
    # Files made before refresh tokens could be DPoP-bound: their tokens stay unbound.
    if "jkt" not in _columns(db, "refresh_tokens"):
        db.execute("ALTER TABLE refresh_tokens ADD COLUMN jkt TEXT")


def words(value: str) -> frozenset[str]:
    return frozenset(value.split())


def spaced(values: frozenset[str]) -> str:
    """``values`` as one column, as :func:`words` reads it back."""
    return " ".join(sorted(values))


def client_of(row: Any) -> Client:
    return Client(row[0], row[1], row[2], words(row[3]), words(row[4]), row[5], bool(row[6]))


def client_row(c: Client) -> tuple[object, ...]:
    return (
        c.client_id,
        c.name,
        c.secret_hash,
        spaced(c.grant_types),
        spaced(c.scopes),
        c.created_at,
        int(c.disabled),
    )


def user_of(row: Any) -> User:
    return User(row[0], row[1], row[2], words(row[3]), bool(row[4]), row[5])


def user_row(u: User) -> tuple[object, ...]:
    return (u.user_id, u.username, u.password_hash, spaced(u.scopes), int(u.disabled), u.created_at)


def token_of(row: Any) -> RefreshToken:
    return RefreshToken(
        row[0], row[1], row[2], row[3], words(row[4]), row[5], row[6], row[7], row[8]
    )


def token_row(t: RefreshToken) -> tuple[object, ...]:
    return (
        t.token_hash,
        t.family_id,
        t.client_id,
        t.subject,
        spaced(t.scopes),
        t.issued_at,
        t.expires_at,
        t.used_at,
        t.jkt,
    )


CLIENTS = Table(
    "clients",
    "client_id, name, secret_hash, grant_types, scopes, created_at, disabled",
    client_of,
    client_row,
)
USERS = Table(
    "users", "user_id, username, password_hash, scopes, disabled, created_at", user_of, user_row
)
REFRESH_TOKENS = Table(
    "refresh_tokens",
    "token_hash, family_id, client_id, subject, scopes, issued_at, expires_at, used_at, jkt",
    token_of,
    token_row,
)
FAMILY_COLUMNS = "family_id, client_id, subject, created_at, expires_at, revoked_at, access_revoked"


def select_family(db: sqlite3.Connection, family_id: str) -> Family | None:
    row = db.execute(
        f"SELECT {FAMILY_COLUMNS} FROM refresh_families WHERE family_id = ?",  # noqa: S608
        (family_id,),
    ).fetchone()
    if row is None:
        return None
    access = db.execute(
        "SELECT jti, expires_at FROM family_access_tokens WHERE family_id = ? ORDER BY expires_at",
        (family_id,),
    ).fetchall()
    return Family(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        bool(row[6]),
        tuple(AccessRecord(jti, exp) for jti, exp in access),
    )


def insert_access(db: sqlite3.Connection, family_id: str, access: AccessRecord) -> None:
    db.execute(
        "INSERT INTO family_access_tokens (family_id, jti, expires_at) VALUES (?, ?, ?)",
        (family_id, access.jti, access.expires_at),
    )


def grow_family(
    db: sqlite3.Connection, family_id: str, new: RefreshToken, access: AccessRecord, now: float
) -> None:
    REFRESH_TOKENS.insert(db, new)
    db.execute(
        "DELETE FROM family_access_tokens WHERE family_id = ? AND expires_at <= ?",
        (family_id, now),
    )
    insert_access(db, family_id, access)
    db.execute(
        "UPDATE refresh_families SET expires_at = MAX(expires_at, ?, ?) WHERE family_id = ?",
        (new.expires_at, access.expires_at, family_id),
    )
