"""One SQLite table read and written as records: the lookup by a column, the listing,
the delete and the insert that every SQLite store would otherwise spell out for each
table.

Run on a :class:`~backends.storage.sqlite.SQLiteRunner`'s thread, inside the function
handed to ``read`` or ``write``.
"""

# Statements are assembled only from the stores' own constants (a table's name, its
# columns, the column a lookup is by) and "?" placeholders: never from input.
# ruff: noqa: S608

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Table(Generic[R]):
    """``record`` makes a record of a row of ``columns``; ``row`` the values of those
    columns, in that order, for a record."""

    name: str
    columns: str
    record: Callable[[Any], R]
    row: Callable[[R], Sequence[object]]

    def one(self, db: sqlite3.Connection, column: str, value: object) -> R | None:
        """The record whose ``column`` (a unique one) is ``value``, or None."""
        found = db.execute(
            f"SELECT {self.columns} FROM {self.name} WHERE {column} = ?", (value,)
        ).fetchone()
        return None if found is None else self.record(found)

    def all(self, db: sqlite3.Connection, rest: str, params: Sequence[object] = ()) -> list[R]:
        """The records selected by ``rest``: the statement's WHERE, ORDER BY and LIMIT."""
        rows = db.execute(f"SELECT {self.columns} FROM {self.name} {rest}", params).fetchall()
        return [self.record(row) for row in rows]

    def delete(self, db: sqlite3.Connection, column: str, value: object) -> R | None:
        """Delete the record whose ``column`` (a unique one) is ``value``; it, or None."""
        record = self.one(db, column, value)
        db.execute(f"DELETE FROM {self.name} WHERE {column} = ?", (value,))
        return record

    def insert(self, db: sqlite3.Connection, record: R) -> None:
        values = self.row(record)
        marks = ", ".join("?" * len(values))
        db.execute(f"INSERT INTO {self.name} ({self.columns}) VALUES ({marks})", values)
