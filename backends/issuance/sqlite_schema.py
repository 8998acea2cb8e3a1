"""The issuance SQLite file's tables, their migration, and the statements the store shares."""

from __future__ import annotations

import sqlite3
from typing import Any

from backends.issuance.base import AccessRecord, Client, Family, RefreshToken, User

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
    used_at    REAL
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


def migrate(db: sqlite3.Connection) -> None:
    # Files made before clients could be disabled.
    columns = {row[1] for row in db.execute("PRAGMA table_info(clients)")}
    if "disabled" not in columns:
        db.execute("ALTER TABLE clients ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0")


def words(value: str) -> frozenset[str]:
    return frozenset(value.split())


def client_of(row: Any) -> Client:
    return Client(row[0], row[1], row[2], words(row[3]), words(row[4]), row[5], bool(row[6]))


def user_of(row: Any) -> User:
    return User(row[0], row[1], row[2], words(row[3]), bool(row[4]), row[5])


def token_of(row: Any) -> RefreshToken:
    return RefreshToken(row[0], row[1], row[2], row[3], words(row[4]), row[5], row[6], row[7])


CLIENT_COLUMNS = "client_id, name, secret_hash, grant_types, scopes, created_at, disabled"
USER_COLUMNS = "user_id, username, password_hash, scopes, disabled, created_at"
REFRESH_COLUMNS = (
    "token_hash, family_id, client_id, subject, scopes, issued_at, expires_at, used_at"
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


def insert_client(db: sqlite3.Connection, client: Client) -> None:
    db.execute(
        f"INSERT INTO clients ({CLIENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
        (
            client.client_id,
            client.name,
            client.secret_hash,
            " ".join(sorted(client.grant_types)),
            " ".join(sorted(client.scopes)),
            client.created_at,
            int(client.disabled),
        ),
    )


def insert_token(db: sqlite3.Connection, token: RefreshToken) -> None:
    db.execute(
        f"INSERT INTO refresh_tokens ({REFRESH_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
        (
            token.token_hash,
            token.family_id,
            token.client_id,
            token.subject,
            " ".join(sorted(token.scopes)),
            token.issued_at,
            token.expires_at,
            token.used_at,
        ),
    )


def insert_access(db: sqlite3.Connection, family_id: str, access: AccessRecord) -> None:
    db.execute(
        "INSERT INTO family_access_tokens (family_id, jti, expires_at) VALUES (?, ?, ?)",
        (family_id, access.jti, access.expires_at),
    )


def grow_family(
    db: sqlite3.Connection, family_id: str, new: RefreshToken, access: AccessRecord, now: float
) -> None:
    insert_token(db, new)
    db.execute(
        "DELETE FROM family_access_tokens WHERE family_id = ? AND expires_at <= ?",
        (family_id, now),
    )
    insert_access(db, family_id, access)
    db.execute(
        "UPDATE refresh_families SET expires_at = MAX(expires_at, ?, ?) WHERE family_id = ?",
        (new.expires_at, access.expires_at, family_id),
    )
