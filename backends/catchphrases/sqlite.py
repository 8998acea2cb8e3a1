"""Catchphrases in an SQLite file in the data directory."""

from __future__ import annotations

import sqlite3
from dataclasses import astuple
from pathlib import Path

from backends.catchphrases.base import Catchphrase, CatchphraseFields
from backends.storage.sqlite import SQLiteRunner, create_schema
from backends.storage.sqlite_table import Table

SCHEMA = """
CREATE TABLE IF NOT EXISTS catchphrases (
    id          TEXT PRIMARY KEY,
    catchphrase TEXT NOT NULL,
    movie       TEXT,
    context     TEXT,
    created_by  TEXT NOT NULL,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);
"""

# The columns are Catchphrase's fields, in their order.
_CATCHPHRASES = Table(
    "catchphrases",
    "id, catchphrase, movie, context, created_by, created_at, updated_at",
    lambda row: Catchphrase(*row),
    astuple,
)


class SQLiteCatchphraseStore:
    def __init__(self, path: Path) -> None:
        self.db = SQLiteRunner(path, setup=create_schema(SCHEMA))

    async def add(self, item: Catchphrase) -> None:
        await self.db.write(lambda db: _CATCHPHRASES.insert(db, item))

    async def get(self, item_id: str) -> Catchphrase | None:
        return await self.db.read(lambda db: _CATCHPHRASES.one(db, "id", item_id))

    async def list(self, *, limit: int, after: str | None = None) -> list[Catchphrase]:
        return await self.db.read(
            lambda db: _CATCHPHRASES.all(
                db, "WHERE id > ? ORDER BY id LIMIT ?", (after or "", limit)
            )
        )

    async def replace(
        self, item_id: str, fields: CatchphraseFields, *, now: float
    ) -> Catchphrase | None:
        def update(db: sqlite3.Connection) -> Catchphrase | None:
            db.execute(
                "UPDATE catchphrases SET catchphrase = ?, movie = ?, context = ?, updated_at = ? "
                "WHERE id = ?",
                (fields.catchphrase, fields.movie, fields.context, now, item_id),
            )
            return _CATCHPHRASES.one(db, "id", item_id)

        return await self.db.write(update)

    async def delete(self, item_id: str) -> bool:
        cursor = await self.db.write(
            lambda db: db.execute("DELETE FROM catchphrases WHERE id = ?", (item_id,))
        )
        return bool(cursor.rowcount)

    async def close(self) -> None:
        await self.db.close()
