"""Catchphrases in MongoDB (pymongo AsyncMongoClient or Motor)."""

from __future__ import annotations

import asyncio
from typing import Any

from pymongo import ReturnDocument

from backends.catchphrases.base import Catchphrase, CatchphraseFields
from backends.storage.mongodb import mongo_errors


def _item(doc: dict[str, Any]) -> Catchphrase:
    return Catchphrase(
        doc["_id"],
        doc["catchphrase"],
        doc.get("movie"),
        doc.get("context"),
        doc["created_by"],
        doc["created_at"],
        doc["updated_at"],
    )


class MongoCatchphraseStore:
    """:param database: a pymongo ``AsyncDatabase`` or a Motor database."""

    def __init__(self, database: Any, *, client: Any = None) -> None:
        self._client = client
        self.items = database["catchphrases"]

    async def add(self, item: Catchphrase) -> None:
        with mongo_errors("catchphrase"):
            await self.items.insert_one(
                {
                    "_id": item.id,
                    "catchphrase": item.catchphrase,
                    "movie": item.movie,
                    "context": item.context,
                    "created_by": item.created_by,
                    "created_at": item.created_at,
                    "updated_at": item.updated_at,
                }
            )

    async def get(self, item_id: str) -> Catchphrase | None:
        with mongo_errors("catchphrase"):
            doc = await self.items.find_one({"_id": item_id})
        return None if doc is None else _item(doc)

    async def list(self, *, limit: int, after: str | None = None) -> list[Catchphrase]:
        query = {} if after is None else {"_id": {"$gt": after}}
        with mongo_errors("catchphrase"):
            docs = [d async for d in self.items.find(query).sort("_id", 1).limit(limit)]
        return [_item(d) for d in docs]

    async def replace(
        self, item_id: str, fields: CatchphraseFields, *, now: float
    ) -> Catchphrase | None:
        with mongo_errors("catchphrase"):
            doc = await self.items.find_one_and_update(
                {"_id": item_id},
                {
                    "$set": {
                        "catchphrase": fields.catchphrase,
                        "movie": fields.movie,
                        "context": fields.context,
                        "updated_at": now,
                    }
                },
                return_document=ReturnDocument.AFTER,
            )
        return None if doc is None else _item(doc)

    async def delete(self, item_id: str) -> bool:
        with mongo_errors("catchphrase"):
            result = await self.items.delete_one({"_id": item_id})
        return bool(result.deleted_count)

    async def close(self) -> None:
        if self._client is not None:
            result = self._client.close()
            if asyncio.iscoroutine(result):
                await result
