"""An issuance SQLite file made before refresh tokens could be DPoP-bound is migrated in
place when the store opens it: its logins stay unbound and keep refreshing, new ones bind."""

from __future__ import annotations

import dataclasses
import sqlite3

from backends.issuance.base import AccessRecord, Family, RefreshToken, Rotation
from backends.issuance.sqlite import SQLiteIssuanceStore
from backends.issuance.sqlite_schema import SCHEMA

T0 = 1_900_000_000.0
JKT_COLUMN = ",\n    jkt        TEXT"


def old_file(path) -> None:
    """A file as the schema before the ``jkt`` column made it, with one login in it."""
    assert JKT_COLUMN in SCHEMA
    db = sqlite3.connect(path)
    db.executescript(SCHEMA.replace(JKT_COLUMN, ""))
    db.execute(
        "INSERT INTO refresh_families (family_id, client_id, subject, created_at, expires_at)"
        " VALUES ('f1', 'c1', 'u1', ?, ?)",
        (T0, T0 + 600),
    )
    db.execute(
        "INSERT INTO refresh_tokens (token_hash, family_id, client_id, subject, scopes,"
        " issued_at, expires_at) VALUES ('h1', 'f1', 'c1', 'u1', 'a b', ?, ?)",
        (T0, T0 + 600),
    )
    db.commit()
    db.close()


def columns(path) -> set[str]:
    db = sqlite3.connect(path)
    try:
        return {row[1] for row in db.execute("PRAGMA table_info(refresh_tokens)")}
    finally:
        db.close()


async def test_an_old_file_is_migrated_and_its_logins_stay_unbound(tmp_path):
    path = tmp_path / "issuance.sqlite3"
    old_file(path)
    assert "jkt" not in columns(path)

    store = SQLiteIssuanceStore(path)
    try:
        token, _ = await store.get_refresh_token("h1")
        assert token.jkt is None
        assert token.scopes == frozenset({"a", "b"})
        successor = RefreshToken("h2", "f1", "c1", "u1", frozenset({"a"}), T0 + 1, T0 + 600)
        outcome = await store.rotate("h1", successor, AccessRecord("j1", T0 + 60), now=T0 + 1)
        assert outcome is Rotation.ROTATED
        assert (await store.get_refresh_token("h2"))[0].jkt is None

        bound = Family("f2", "c1", "u1", T0, T0 + 600)
        first = dataclasses.replace(successor, token_hash="h3", family_id="f2", jkt="thumb")
        await store.start_family(bound, first, AccessRecord("j2", T0 + 60))
        assert (await store.get_refresh_token("h3"))[0].jkt == "thumb"
    finally:
        await store.close()
    assert "jkt" in columns(path)

    # Opening a migrated file again changes nothing.
    again = SQLiteIssuanceStore(path)
    try:
        assert (await again.get_refresh_token("h3"))[0].jkt == "thumb"
    finally:
        await again.close()
