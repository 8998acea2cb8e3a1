"""Catchphrases in an SQLite file in the data directory."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from backends.catchphrases.base import Catchphrase, CatchphraseFields
from backends.storage.sqlite import SQLiteRunner, create_schema

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

_COLUMNS = "id, catchphrase, movie, context, created_by, created_at, updated_at"


def _item(row: Any) -> Catchphrase:
    return Catchphrase(*row)


class SQLiteCatchphraseStore:
    def __init__(self, path: Path) -> None:
        self.db = SQLiteRunner(path, setup=create_schema(SCHEMA))

    async def add(self, item: Catchphrase) -> None:
        await self.db.write(
            lambda db: db.execute(
                f"INSERT INTO catchphrases ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
                (
                    item.id,
                    item.catchphrase,
                    item.movie,
                    item.context,
                    item.created_by,
                    item.created_at,
                    item.updated_at,
                ),
            )
        )

    async def get(self, item_id: str) -> Catchphrase | None:
        row = await self.db.read(
            lambda db: db.execute(
                f"SELECT {_COLUMNS} FROM catchphrases WHERE id = ?",  # noqa: S608
                (item_id,),
            ).fetchone()
        )
        return None if row is None else _item(row)

    async def list(self, *, limit: int, after: str | None = None) -> list[Catchphrase]:
        rows = await self.db.read(
            lambda db: db.execute(
                f"SELECT {_COLUMNS} FROM catchphrases WHERE id > ? ORDER BY id LIMIT ?",  # noqa: S608
                (after or "", limit),
            ).fetchall()
        )
        return [_item(row) for row in rows]

    async def replace(
        self, item_id: str, fields: CatchphraseFields, *, now: float
    ) -> Catchphrase | None:
        def update(db: sqlite3.Connection) -> Any:
            db.execute(
                "UPDATE catchphrases SET catchphrase = ?, movie = ?, context = ?, updated_at = ? "
                "WHERE id = ?",
                (fields.catchphrase, fields.movie, fields.context, now, item_id),
            )
            return db.execute(
                f"SELECT {_COLUMNS} FROM catchphrases WHERE id = ?",  # noqa: S608
                (item_id,),
            ).fetchone()

        row = await self.db.write(update)
        return None if row is None else _item(row)

    async def delete(self, item_id: str) -> bool:
        cursor = await self.db.write(
            lambda db: db.execute("DELETE FROM catchphrases WHERE id = ?", (item_id,))
        )
        return bool(cursor.rowcount)

    async def close(self) -> None:
        await self.db.close()
