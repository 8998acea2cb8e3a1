"""MongoDB store (pymongo's ``AsyncMongoClient``; a Motor client works the same way).

One document per entry key, a unique index on ``(kind, issuer, value)`` (so one
``jti`` per issuer), a TTL index on ``ttl_at`` and the authoritative ``expires_at``
beside it: the TTL monitor deletes late, so code never trusts that a document still
present is live. A revoke is one atomic update that merges into the live entry
(``$max`` of cutoff and expiry), or puts a new one where none is live: concurrent or
repeated revokes of one key converge without compare-and-set, so a burst of them never
runs out of retries. Writes use write concern ``majority`` with journaling. A lost
acknowledgement answers 503 with the write in force; the retry merges into it.

Change numbers come from a counter document, so they are handed out before the
write commits and concurrent writers may commit out of order (``seq`` only ever rises,
by ``$max``). The change feed therefore only reads numbers handed out at least
``settle`` seconds ago, and a writer whose write took longer than half of that stamps
its document again with a fresh number. Without multi-document transactions (a
standalone server has none) an entry and its audit record are two writes: the entry
first, so a failure in between leaves the revocation in force and answers 503.

The feed's epoch is a counter document written by the first feed reader that finds
none: a dropped database gets a new one, and a counter reset shows as a counter below a
follower's cursor; either makes a follower reload. A reader that finds the counter below
the entries' own numbers (the feed reads only numbers the counter has handed out) sets
it past them again and gives the feed a new epoch: numbers were handed out twice, and
every follower must reload.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import secrets
import time
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

from pymongo import ASCENDING, DESCENDING, ReturnDocument, WriteConcern
from pymongo.errors import DuplicateKeyError, PyMongoError

from backends.errors import BackendUnavailable
from backends.revocation.base import (
    AuditPage,
    AuditRecord,
    Change,
    ChangeBatch,
    EntryKey,
    Page,
    Revocation,
    audit_of,
    audit_record_from,
)
from backends.revocation.core import StoreBase, clamp_limit, parse_cursor
from backends.revocation.mongo_docs import (
    audit_doc,
    dead_filter,
    decode,
    encode,
    key_filter,
    live_filter,
    merge_update,
    replace_update,
)
from backends.revocation.writeback import RESTORED_BY, restoration
from backends.storage.mongodb import DEFAULT_DATABASE, Indexes, mongo_client

T = TypeVar("T")

DEFAULT_SETTLE = 1.0
# A revoke needs a second attempt only when a concurrent writer created or un-revoked
# the entry between its two updates; a third attempt is already a sign of trouble.
REVOKE_ATTEMPTS = 4
# Writing back is compare-and-set (its decision reads the current state): jittered
# backoff keeps concurrent writers out of lockstep.
RESTORE_ATTEMPTS = 12
RESTAMPS = 5
COUNTER_ATTEMPTS = 3


class MongoRevocationStore(StoreBase):
    durable = True

    def __init__(
        self,
        client: Any,
        *,
        database: str = DEFAULT_DATABASE,
        settle: float = DEFAULT_SETTLE,
        **options: Any,
    ) -> None:
        """``client``: an ``AsyncMongoClient`` or a Motor client (typed Any: Motor is untyped)."""
        super().__init__(**options)
        if settle <= 0:
            raise ValueError("settle must be positive: the change feed relies on it")
        self.client = client
        self.settle = settle
        db = client.get_database(database, write_concern=WriteConcern(w="majority", j=True))
        self.entries = db["revocations"]
        self.audit = db["revocation_audit"]
        self.counters = db["revocation_counters"]
        self.db = db
        self._indexes = Indexes(self._create_indexes)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MongoRevocationStore:
        """``mongodb://host[:port]/database``; the database defaults to ``jotguard``."""
        client, database = mongo_client(url)
        return cls(client, database=database, **options)

    async def _call(self, operation: Awaitable[T]) -> T:
        try:
            await self._indexes.ensure()
            return await operation
        except PyMongoError as exc:
            raise BackendUnavailable(
                f"The revocation store cannot answer ({type(exc).__name__})"
            ) from exc
        finally:
            # An operation never awaited (indexes failed) must not warn "never awaited".
            if inspect.iscoroutine(operation):
                operation.close()

    async def _create_indexes(self) -> None:
        await self.entries.create_index(
            [("kind", ASCENDING), ("issuer", ASCENDING), ("value", ASCENDING)],
            unique=True,
            name="one_entry_per_key",
        )
        await self.entries.create_index("id", name="by_id")
        await self.entries.create_index("seq", name="by_seq")
        await self.entries.create_index("ttl_at", expireAfterSeconds=0, name="ttl")
        await self.audit.create_index("seq", name="by_seq")

    async def _next_seq(self, name: str = "seq") -> int:
        for _ in range(COUNTER_ATTEMPTS):
            doc = await self.counters.find_one_and_update(
                {"_id": name},
                {"$inc": {"value": 1}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
            # mongod always returns the upserted document; a server that answers none
            # (seen under concurrent upserts) applied the increment: take another.
            if doc is not None:
                value: int = doc["value"]
                return value
        raise BackendUnavailable("The revocation store's change counter did not answer")

    async def _restamp_if_slow(self, doc_id: Any, started: float) -> None:
        # A change number handed out long before its write committed could be passed
        # over by a change-feed reader: give the document a fresh one.
        for _ in range(RESTAMPS):
            if time.monotonic() - started <= self.settle / 2:
                return
            started = time.monotonic()
            fresh = await self._next_seq()
            await self.entries.update_one({"_id": doc_id}, {"$max": {"seq": fresh}})
        raise BackendUnavailable("The revocation store is too slow to number its changes")

    async def _record(self, record: AuditRecord) -> None:
        seq = await self._next_seq("audit")
        await self.audit.insert_one(audit_doc(seq, record))

    # -- writes -------------------------------------------------------------------------

    async def _write(self, incoming: Revocation, now: float) -> Revocation:
        return await self._call(self._revoke_once(incoming, now))

    async def _revoke_once(self, incoming: Revocation, now: float) -> Revocation:
        for _ in range(REVOKE_ATTEMPTS):
            started = time.monotonic()
            seq = await self._next_seq()
            doc = await self.entries.find_one_and_update(
                live_filter(incoming.key, now),
                merge_update(incoming, seq),
                return_document=ReturnDocument.AFTER,
            )
            if doc is None:
                try:
                    doc = await self.entries.find_one_and_update(
                        dead_filter(incoming.key, now),
                        replace_update(incoming, seq),
                        upsert=True,
                        return_document=ReturnDocument.AFTER,
                    )
                except DuplicateKeyError:
                    continue  # a concurrent writer made a live entry meanwhile: merge into it
                if doc is None:
                    continue  # a server that answers no upserted document: look again
            await self._restamp_if_slow(doc["_id"], started)
            entry = decode(doc).entry
            await self._record(audit_of("revoke", entry, now, incoming.actor, incoming.reason))
            return entry
        raise BackendUnavailable("The revocation store is too busy; retry")

    async def unrevoke(
        self, entry_id: str, *, reason: str | None = None, actor: str | None = None
    ) -> Revocation | None:
        return await self._call(self._unrevoke(entry_id, reason, actor))

    async def _unrevoke(
        self, entry_id: str, reason: str | None, actor: str | None
    ) -> Revocation | None:
        now = self.clock()
        started = time.monotonic()
        seq = await self._next_seq()
        doc = await self.entries.find_one_and_update(
            {"id": entry_id, "removed": False, "expires_at": {"$gt": now}},
            {"$set": {"removed": True}, "$max": {"seq": seq}, "$inc": {"v": 1}},
        )
        if doc is None:
            return None  # the number stays unused: the feed does not need them dense
        await self._restamp_if_slow(doc["_id"], started)
        entry = decode(doc).entry
        await self._record(audit_of("unrevoke", entry, now, actor, reason))
        return entry

    # -- reads --------------------------------------------------------------------------

    async def _find(self, query: dict[str, Any], sort: int, limit: int) -> list[dict[str, Any]]:
        cursor = self.entries.find(query).sort("seq", sort).limit(limit)
        docs: list[dict[str, Any]] = await cursor.to_list(None)
        return docs

    async def _fetch(self, keys: Sequence[EntryKey]) -> list[Revocation]:
        query = {"removed": False, "$or": [key_filter(k) for k in keys]}
        docs = await self._call(self._find(query, ASCENDING, len(keys)))
        return [decode(doc).entry for doc in docs]

    async def list_entries(self, *, limit: int = 50, cursor: str | None = None) -> Page:
        before = parse_cursor(cursor)
        size = clamp_limit(limit)
        query: dict[str, Any] = {"removed": False, "expires_at": {"$gt": self.clock()}}
        if before is not None:
            query["seq"] = {"$lt": before}
        docs = await self._call(self._find(query, DESCENDING, size + 1))
        page = docs[:size]
        more = len(docs) > size
        return Page([decode(d).entry for d in page], str(page[-1]["seq"]) if more else None)

    async def changes(self, cursor: int = 0, *, limit: int = 500) -> ChangeBatch:
        return await self._call(self._changes(cursor, clamp_limit(limit)))

    async def _changes(self, cursor: int, limit: int) -> ChangeBatch:
        # The highest number an entry carries, before the counter: every number in an
        # entry was handed out by the counter first, so only a reset puts it above.
        top_docs = await self._find({}, DESCENDING, 1)
        top: int = top_docs[0]["seq"] if top_docs else 0
        found = self.counters.find({"_id": {"$in": ["seq", "epoch"]}})
        counters = {doc["_id"]: doc["value"] for doc in await found.to_list(None)}
        epoch = counters.get("epoch")
        if epoch is None:
            epoch = await self._start_epoch()
        head: int = counters.get("seq", 0)
        high = head
        if top > head:
            epoch = await self._counter_set_back(top, epoch)
            high = top
        at_doc = await self.entries.find_one({"seq": cursor}) if cursor > 0 else None
        at_cursor = decode(at_doc) if at_doc is not None else None
        if high <= cursor:
            return ChangeBatch([], cursor, epoch, head, at_cursor)
        # Every number up to `high` was handed out before now: after `settle`, each
        # such write has committed or been re-stamped with a larger number.
        await asyncio.sleep(self.settle)
        docs = await self._find({"seq": {"$gt": cursor, "$lte": high}}, ASCENDING, limit)
        changes = [decode(doc) for doc in docs]
        next_cursor = changes[-1].seq if len(changes) == limit else high
        return ChangeBatch(changes, next_cursor, epoch, head, at_cursor)

    async def _counter_set_back(self, top: int, epoch: str) -> str:
        """The counter was reset under its entries: set it past them again, and give the
        feed a new epoch (numbers were handed out twice: every follower must reload)."""
        await self.counters.update_one({"_id": "seq"}, {"$max": {"value": top}}, upsert=True)
        # Only if no other reader did it first: one new epoch, one reload per follower.
        await self.counters.update_one(
            {"_id": "epoch", "value": epoch}, {"$set": {"value": secrets.token_hex(8)}}
        )
        doc = await self.counters.find_one({"_id": "epoch"})
        new: str = doc["value"] if doc is not None else epoch
        return new

    async def _start_epoch(self) -> str:
        """The feed's epoch, written now if it has none (first start, or data lost)."""
        # A dropped database took its indexes with it: the unique and TTL ones matter.
        self._indexes.forget()
        await self._indexes.ensure()
        doc = await self.counters.find_one_and_update(
            {"_id": "epoch"},
            {"$setOnInsert": {"value": secrets.token_hex(8)}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:  # no document in the reply: read what the upsert left
            doc = await self.counters.find_one({"_id": "epoch"})
        if doc is None:
            raise BackendUnavailable("The revocation store did not record its feed's epoch")
        epoch: str = doc["value"]
        return epoch

    # -- writing back what the store lost ----------------------------------------------

    async def _restore(self, states: list[Change], origin: str, now: float) -> int:
        return await self._call(self._restore_each(states, origin, now))

    async def _restore_each(self, states: list[Change], origin: str, now: float) -> int:
        written = 0
        for offered in states:
            if await self._restore_one(offered, origin, now):
                written += 1
        return written

    async def _restore_one(self, offered: Change, origin: str, now: float) -> bool:
        # Compare-and-set on the state's version ``v`` (not on ``seq``, which a re-stamp
        # changes without changing the state).
        for attempt in range(RESTORE_ATTEMPTS):
            if attempt:
                await asyncio.sleep(random.uniform(0, 0.002 * 2 ** min(attempt, 8)))  # noqa: S311
            doc = await self.entries.find_one(key_filter(offered.entry.key))
            keep = restoration(decode(doc) if doc else None, offered, origin, now)
            if keep is None:
                return False
            started = time.monotonic()
            seq = await self._next_seq()
            version = doc.get("v") if doc is not None else None
            new_doc = {
                **encode(keep.entry, keep.removed, keep.origin),
                "seq": max(seq, doc["seq"]) if doc is not None else seq,
                "v": (version or 0) + 1,
            }
            if doc is None:
                try:
                    doc_id = (await self.entries.insert_one(new_doc)).inserted_id
                except DuplicateKeyError:
                    continue
            else:
                # ``{"v": None}`` also matches a document written before versions existed.
                replaced = await self.entries.replace_one(
                    {"_id": doc["_id"], "v": version}, new_doc
                )
                if replaced.matched_count == 0:
                    continue
                doc_id = doc["_id"]
            await self._restamp_if_slow(doc_id, started)
            if not keep.removed:
                await self._record(audit_of("restore", keep.entry, now, RESTORED_BY, None))
            return True
        raise BackendUnavailable("The revocation store is too busy; retry")

    async def audit_log(self, *, limit: int = 50, cursor: str | None = None) -> AuditPage:
        before = parse_cursor(cursor)
        size = clamp_limit(limit)
        query: dict[str, Any] = {} if before is None else {"seq": {"$lt": before}}

        async def find() -> list[dict[str, Any]]:
            found = self.audit.find(query).sort("seq", DESCENDING).limit(size + 1)
            docs: list[dict[str, Any]] = await found.to_list(None)
            return docs

        docs = await self._call(find())
        page = docs[:size]
        records = [audit_record_from(d) for d in page]
        return AuditPage(records, str(page[-1]["seq"]) if len(docs) > size else None)

    async def ping(self) -> None:
        await self._call(self.db.command("ping"))

    async def close(self) -> None:
        closing = self.client.close()  # a coroutine for pymongo's async client, None for Motor
        if inspect.isawaitable(closing):
            await closing
