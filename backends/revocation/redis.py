"""Redis store (``redis.asyncio``): entries as keys that expire by themselves (EXAT).

Its keys, and the scripts that write and read them, are
:mod:`backends.revocation.redis_layout`. Every change is one Lua script
(:data:`~backends.revocation.redis_layout.CHANGE_SCRIPT`): it takes the next change
number and writes the state, its indexes, its audit record and the announcement
together, so change numbers become visible in order and a follower never reads past
one still to come. A revocation merges over the live entry inside the script, as
:func:`~backends.revocation.policy.merge` does (``tests/test_revocation_stores.py``
holds the two to the same results): writers never retry, not on the counter and not on
one entry revoked by many at once. An un-revocation or a written-back state is written
only if the entry is still as read (a retry only when another writer changed that very
entry meanwhile). Every operation has a budget (a second by default) so an outage is a
fast 503, not a hung request; the client and its pool come from
:mod:`backends.storage.redis`, shared with the other users of the same Redis.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar, cast
from urllib.parse import parse_qsl, urlsplit

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from backends.errors import BackendUnavailable
from backends.revocation.base import (
    AuditAction,
    AuditPage,
    AuditRecord,
    Change,
    ChangeBatch,
    EntryKey,
    Page,
    Revocation,
)
from backends.revocation.core import StoreBase, clamp_limit, parse_cursor
from backends.revocation.redis_layout import (
    CHANGE_SCRIPT,
    READ_SCRIPT,
    as_text,
    decode_state,
    encode_state,
    key_member,
)
from backends.revocation.writeback import RESTORED_BY as RESTORER
from backends.revocation.writeback import restoration
from backends.storage.redis import STORE_BUDGET, answered, redis_client, url_timeout

T = TypeVar("T")

DEFAULT_PREFIX = "jotguard:revocations:"
# Un-revocations and write-backs retry when another writer changed their entry meanwhile.
WRITE_ATTEMPTS = 50
_STREAM_ID = re.compile(r"\d{1,20}-\d{1,20}")


class RedisRevocationStore(StoreBase):
    durable = True  # as durable as the server's persistence: see the README
    timeout = STORE_BUDGET
    """Seconds an operation may take before the store counts as unavailable."""

    def __init__(self, client: Redis, *, prefix: str = DEFAULT_PREFIX, **options: Any) -> None:
        super().__init__(**options)
        self.redis = client
        self.prefix = prefix
        self._change_script = client.register_script(CHANGE_SCRIPT)
        self._read_script = client.register_script(READ_SCRIPT)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisRevocationStore:
        """``redis://host:port/db``; ``?prefix=`` sets the key prefix, other query
        parameters go to redis-py (a ``socket_timeout`` there is also the budget)."""
        prefix = dict(parse_qsl(urlsplit(url).query)).get("prefix", DEFAULT_PREFIX)
        store = cls(redis_client(url), prefix=prefix, **options)
        store.timeout = url_timeout(url, STORE_BUDGET)
        return store

    def _k(self, name: str) -> str:
        return self.prefix + name

    @property
    def changes_channel(self) -> str:
        """The pub/sub channel every committed change number is published on."""
        return self._k("changed")

    def _entry_key(self, member: str) -> str:
        return self._k("entry:" + member)

    async def _call(self, operation: Awaitable[T]) -> T:
        return await answered(operation, self.timeout, "revocation store")

    # -- writes -------------------------------------------------------------------------

    def _change(
        self,
        mode: str,
        member: str,
        entry: Revocation,
        now: float,
        *,
        expected: bytes | None = None,
        removed: bool = False,
        origin: tuple[str, int] | None = None,
        action: AuditAction | None = None,
        actor: str | None = None,
        reason: str | None = None,
        client: Redis | Pipeline | None = None,
    ) -> Awaitable[Any]:
        """Run :data:`CHANGE_SCRIPT`: the state written, or None ('put' only) when the
        entry is no longer ``expected``. ``action`` adds its audit record."""
        args: list[Any] = [
            mode,
            member,
            repr(now),
            self.changes_channel,
            self._k("id:"),
            encode_state(entry, removed, origin),
            expected or b"",
            action or "",
            actor or "",
            reason or "",
        ]
        keys = [
            self._entry_key(member),
            self._k("seq"),
            self._k("changes"),
            self._k("expiry"),
            self._k("audit"),
        ]
        result: Awaitable[Any] = self._change_script(keys=keys, args=args, client=client)
        return result

    async def _write(self, incoming: Revocation, now: float) -> Revocation:
        async def write() -> Revocation:
            written = await self._change(
                "merge",
                key_member(incoming.key),
                incoming,
                now,
                action="revoke",
                actor=incoming.actor,
                reason=incoming.reason,
            )
            state = decode_state(written)
            assert state is not None
            return state.entry

        return await self._call(write())

    async def unrevoke(
        self, entry_id: str, *, reason: str | None = None, actor: str | None = None
    ) -> Revocation | None:
        now = self.clock()

        async def remove() -> Revocation | None:
            raw_member = await self.redis.get(self._k("id:" + entry_id))
            if raw_member is None:
                return None
            member = as_text(raw_member)
            for _ in range(WRITE_ATTEMPTS):
                raw = await self.redis.get(self._entry_key(member))
                state = decode_state(raw)
                if (
                    state is None
                    or state.removed
                    or state.entry.id != entry_id
                    or state.entry.expires_at <= now
                ):
                    return None
                written = await self._change(
                    "put",
                    member,
                    state.entry,
                    now,
                    expected=raw,
                    removed=True,
                    action="unrevoke",
                    actor=actor,
                    reason=reason,
                )
                if written is not None:
                    return state.entry
            raise BackendUnavailable("The revocation store is too busy; retry")

        return await self._call(remove())

    async def _restore(self, states: list[Change], origin: str, now: float) -> int:
        async def restore() -> int:
            written = 0
            pending = states
            for _ in range(WRITE_ATTEMPTS):
                if not pending:
                    return written
                members = [key_member(s.entry.key) for s in pending]
                raws = await self.redis.mget([self._entry_key(m) for m in members])
                planned: list[Change] = []
                async with self.redis.pipeline(transaction=False) as pipe:
                    for offered, member, raw in zip(pending, members, raws, strict=True):
                        keep = restoration(decode_state(raw), offered, origin, now)
                        if keep is None:
                            continue
                        await self._change(  # queued on the pipeline
                            "put",
                            member,
                            keep.entry,
                            now,
                            expected=raw,
                            removed=keep.removed,
                            origin=keep.origin,
                            # A tombstone written back decides nothing: no audit record.
                            action=None if keep.removed else "restore",
                            actor=RESTORER,
                            client=pipe,
                        )
                        planned.append(offered)
                    results = await pipe.execute() if planned else []
                written += sum(1 for doc in results if doc is not None)
                # Changed under us since read: decide again over the new state.
                pending = [s for s, doc in zip(planned, results, strict=True) if doc is None]
            raise BackendUnavailable("The revocation store is too busy; retry")

        return await self._call(restore())

    # -- reads --------------------------------------------------------------------------

    async def _fetch(self, keys: Sequence[EntryKey]) -> list[Revocation]:
        names = [self._entry_key(key_member(k)) for k in keys]
        raws = await self._call(self.redis.mget(names))
        states = (decode_state(raw) for raw in raws)
        return [s.entry for s in states if s is not None and not s.removed]

    async def _states(self, members: list[Any]) -> list[Change | None]:
        if not members:
            return []
        names = [self._entry_key(as_text(m)) for m in members]
        return [decode_state(raw) for raw in await self._call(self.redis.mget(names))]

    async def list_entries(self, *, limit: int = 50, cursor: str | None = None) -> Page:
        before = parse_cursor(cursor)
        size = clamp_limit(limit)
        now = self.clock()
        top: str = f"({before}" if before is not None else "+inf"
        found: list[Change] = []
        # Tombstones and expired members share the index: read on until the page is full.
        while len(found) <= size:
            members = await self._call(
                self.redis.zrevrangebyscore(
                    self._k("changes"), top, "-inf", start=0, num=size + 1, withscores=True
                )
            )
            if not members:
                break
            states = await self._states([m for m, _ in members])
            found.extend(
                s for s in states if s is not None and not s.removed and s.entry.expires_at > now
            )
            top = f"({int(members[-1][1])}"
        page = found[:size]
        more = len(found) > size
        return Page([c.entry for c in page], str(page[-1].seq) if more else None)

    async def changes(self, cursor: int = 0, *, limit: int = 500) -> ChangeBatch:
        async def read() -> ChangeBatch:
            keys = [self._k("epoch"), self._k("seq"), self._k("changes")]
            args: list[str | int] = [secrets.token_hex(8), cursor, clamp_limit(limit)]
            epoch, head, page, at_member = await self._read_script(keys=keys, args=args)
            members = page[0::2]
            states = await self._states([*members, *at_member])
            # A state newer than its score was read is still correct: followers keep the
            # highest change number per key, and see it again under its own score.
            changes = [s for s in states[: len(members)] if s is not None]
            at_cursor = states[len(members)] if at_member else None
            if at_cursor is not None and at_cursor.seq != cursor:
                at_cursor = None  # rewritten since it was found there
            next_cursor = int(float(page[-1])) if page else cursor
            return ChangeBatch(changes, next_cursor, as_text(epoch), int(head), at_cursor)

        return await self._call(read())

    async def audit_log(self, *, limit: int = 50, cursor: str | None = None) -> AuditPage:
        if cursor is not None and not _STREAM_ID.fullmatch(cursor):
            raise ValueError("the cursor is not one this server handed out")
        size = clamp_limit(limit)
        top = f"({cursor}" if cursor is not None else "+"
        rows = await self._call(self.redis.xrevrange(self._k("audit"), top, "-", count=size + 1))
        page = rows[:size]
        records = []
        for _, fields in page:
            f = {as_text(k): as_text(v) for k, v in fields.items()}
            records.append(
                AuditRecord(
                    float(f["at"]),
                    f["action"],  # type: ignore[arg-type]
                    f["entry_id"],
                    f["kind"],  # type: ignore[arg-type]
                    f["value"],
                    f["issuer"] or None,
                    f["actor"] or None,
                    f["reason"] or None,
                )
            )
        next_cursor = as_text(page[-1][0]) if len(rows) > size else None
        return AuditPage(records, next_cursor)

    async def ping(self) -> None:
        await self._call(cast("Awaitable[bool]", self.redis.ping()))

    async def close(self) -> None:
        await self.redis.aclose()
