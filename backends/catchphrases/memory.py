"""Catchphrases in a dict: for tests; nothing survives a restart."""

from __future__ import annotations

import dataclasses

from backends.catchphrases.base import Catchphrase, CatchphraseFields


class MemoryCatchphraseStore:
    def __init__(self) -> None:
        self._items: dict[str, Catchphrase] = {}

    async def add(self, item: Catchphrase) -> None:
        self._items[item.id] = item

    async def get(self, item_id: str) -> Catchphrase | None:
        return self._items.get(item_id)

    async def list(self, *, limit: int, after: str | None = None) -> list[Catchphrase]:
        ids = sorted(i for i in self._items if after is None or i > after)
        return [self._items[i] for i in ids[:limit]]

    async def replace(
        self, item_id: str, fields: CatchphraseFields, *, now: float
    ) -> Catchphrase | None:
        item = self._items.get(item_id)
        if item is None:
            return None
        updated = dataclasses.replace(
            item,
            catchphrase=fields.catchphrase,
            movie=fields.movie,
            context=fields.context,
            updated_at=now,
        )
        self._items[item_id] = updated
        return updated

    async def delete(self, item_id: str) -> bool:
        return self._items.pop(item_id, None) is not None

    async def close(self) -> None:
        return None
