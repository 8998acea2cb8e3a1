"""Redis store (``redis.asyncio``): entries as keys that expire by themselves (EXAT).

Layout under one key prefix:

- ``entry:<key>``: the entry's latest state as JSON, expiring when the entry does;
- ``id:<id>``: the entry key an id names (for un-revoking by id);
- ``seq``: the change counter;
- ``changes``: sorted set of entry keys scored by their latest change number;
- ``expiry``: sorted set of entry keys scored by expiry, to prune ``changes``;
- ``audit``: a stream of admin actions.

Every write runs WATCH/MULTI over ``seq`` and the entry key, so writers (servers and
the CLI alike) are serialised: the merged entry, its change number and its audit
record commit together, and change numbers become visible in order. Socket timeouts
are short so an outage is a fast 503, not a hung request.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, WatchError

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
from backends.revocation.policy import merge

T = TypeVar("T")

DEFAULT_PREFIX = "jotguard:revocations:"
DEFAULT_TIMEOUT = 1.0
WRITE_ATTEMPTS = 50
_STREAM_ID = re.compile(r"\d{1,20}-\d{1,20}")


def _key_member(key: EntryKey) -> str:
    kind, issuer, value = key
    return json.dumps([kind, issuer or "", value], separators=(",", ":"))


def _encode(entry: Revocation, seq: int, removed: bool) -> str:
    return json.dumps(
        {
            "id": entry.id,
            "kind": entry.kind,
            "value": entry.value,
            "issuer": entry.issuer,
            "cutoff": entry.cutoff,
            "expires_at": entry.expires_at,
            "created_at": entry.created_at,
            "reason": entry.reason,
            "actor": entry.actor,
            "seq": seq,
            "removed": removed,
        },
        separators=(",", ":"),
    )


def _decode(raw: bytes | str | None) -> Change | None:
    if raw is None:
        return None
    doc = json.loads(raw)
    entry = Revocation(
        id=doc["id"],
        kind=doc["kind"],
        value=doc["value"],
        issuer=doc["issuer"],
        cutoff=doc["cutoff"],
        expires_at=doc["expires_at"],
        created_at=doc["created_at"],
        reason=doc["reason"],
        actor=doc["actor"],
    )
    return Change(doc["seq"], entry, doc["removed"])


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisRevocationStore(StoreBase):
    durable = True  # as durable as the server's persistence: see the README

    def __init__(self, client: Redis, *, prefix: str = DEFAULT_PREFIX, **options: Any) -> None:
        super().__init__(**options)
        self.redis = client
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisRevocationStore:
        """``redis://host:port/db``; ``?prefix=`` sets the key prefix, other query
        parameters go to redis-py (e.g. ``socket_timeout``)."""
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        prefix = query.pop("prefix", DEFAULT_PREFIX)
        query.setdefault("socket_timeout", str(DEFAULT_TIMEOUT))
        query.setdefault("socket_connect_timeout", str(DEFAULT_TIMEOUT))
        client = Redis.from_url(
            urlunsplit(parts._replace(query=urlencode(query))),
            # One quick retry covers a pooled connection the server dropped; more would
            # turn an outage into a slow request.
            retry=Retry(NoBackoff(), 1),
        )
        return cls(client, prefix=prefix, **options)

    def _k(self, name: str) -> str:
        return self.prefix + name

    @property
    def changes_channel(self) -> str:
        """The pub/sub channel every committed change number is published on."""
        return self._k("changed")

    def _entry_key(self, member: str) -> str:
        return self._k("entry:" + member)

    async def _call(self, operation: Awaitable[T]) -> T:
        try:
            return await operation
        except (RedisError, OSError) as exc:
            raise BackendUnavailable(
                f"The revocation store cannot answer ({type(exc).__name__})"
            ) from exc

    # -- writes -------------------------------------------------------------------------

    async def _write(self, incoming: Revocation, now: float) -> Revocation:
        member = _key_member(incoming.key)

        async def write(pipe: Pipeline) -> Revocation:
            state = _decode(await pipe.get(self._entry_key(member)))
            existing = state.entry if state is not None and not state.removed else None
            entry = merge(existing, incoming, now)
            seq = int(await pipe.get(self._k("seq")) or 0) + 1
            stale = await pipe.zrangebyscore(self._k("expiry"), "-inf", now)
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.set(self._k("seq"), seq)
            self._stage(pipe, member, entry, seq, removed=False)
            pipe.set(self._k("id:" + entry.id), member, exat=math.ceil(entry.expires_at))
            stale_members = [_text(m) for m in stale if _text(m) != member]
            if stale_members:
                pipe.zrem(self._k("changes"), *stale_members)
                pipe.zrem(self._k("expiry"), *stale_members)
            self._stage_audit(pipe, "revoke", entry, now, incoming.actor, incoming.reason)
            await pipe.execute()
            return entry

        return await self._transaction([self._entry_key(member)], write)

    def _stage(
        self, pipe: Pipeline, member: str, entry: Revocation, seq: int, *, removed: bool
    ) -> None:
        pipe.set(
            self._entry_key(member),
            _encode(entry, seq, removed),
            exat=math.ceil(entry.expires_at),
        )
        pipe.zadd(self._k("changes"), {member: seq})
        pipe.zadd(self._k("expiry"), {member: entry.expires_at})
        # Inside the transaction: announced exactly when committed, to wake mirrors at once
        # (backends.revocation.notify); a missed announcement costs one poll interval.
        pipe.publish(self.changes_channel, seq)

    def _stage_audit(
        self,
        pipe: Pipeline,
        action: AuditAction,
        entry: Revocation,
        now: float,
        actor: str | None,
        reason: str | None,
    ) -> None:
        record = {
            "at": repr(now),
            "action": action,
            "entry_id": entry.id,
            "kind": entry.kind,
            "value": entry.value,
            "issuer": entry.issuer or "",
            "actor": actor or "",
            "reason": reason or "",
        }
        pipe.xadd(self._k("audit"), record)  # type: ignore[arg-type]

    async def _transaction(self, keys: list[str], body: Callable[[Pipeline], Awaitable[T]]) -> T:
        async def attempt() -> T:
            async with self.redis.pipeline(transaction=True) as pipe:
                for _ in range(WRITE_ATTEMPTS):
                    try:
                        await pipe.watch(self._k("seq"), *keys)
                        return await body(pipe)
                    except WatchError:
                        await pipe.reset()  # type: ignore[no-untyped-call]
                raise BackendUnavailable("The revocation store is too busy; retry")

        return await self._call(attempt())

    async def unrevoke(
        self, entry_id: str, *, reason: str | None = None, actor: str | None = None
    ) -> Revocation | None:
        now = self.clock()
        raw_member = await self._call(self.redis.get(self._k("id:" + entry_id)))
        if raw_member is None:
            return None
        member = _text(raw_member)

        async def remove(pipe: Pipeline) -> Revocation | None:
            state = _decode(await pipe.get(self._entry_key(member)))
            if (
                state is None
                or state.removed
                or state.entry.id != entry_id
                or state.entry.expires_at <= now
            ):
                await pipe.reset()  # type: ignore[no-untyped-call]
                return None
            seq = int(await pipe.get(self._k("seq")) or 0) + 1
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.set(self._k("seq"), seq)
            self._stage(pipe, member, state.entry, seq, removed=True)
            pipe.delete(self._k("id:" + entry_id))
            self._stage_audit(pipe, "unrevoke", state.entry, now, actor, reason)
            await pipe.execute()
            return state.entry

        return await self._transaction([self._entry_key(member)], remove)

    # -- reads --------------------------------------------------------------------------

    async def _fetch(self, keys: Sequence[EntryKey]) -> list[Revocation]:
        names = [self._entry_key(_key_member(k)) for k in keys]
        raws = await self._call(self.redis.mget(names))
        states = (_decode(raw) for raw in raws)
        return [s.entry for s in states if s is not None and not s.removed]

    async def _states(self, members: list[Any]) -> list[Change | None]:
        if not members:
            return []
        names = [self._entry_key(_text(m)) for m in members]
        return [_decode(raw) for raw in await self._call(self.redis.mget(names))]

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
        members = await self._call(
            self.redis.zrangebyscore(
                self._k("changes"),
                f"({cursor}",
                "+inf",
                start=0,
                num=clamp_limit(limit),
                withscores=True,
            )
        )
        states = await self._states([m for m, _ in members])
        # A state newer than its score was read is still correct: followers keep the
        # highest change number per key, and see it again under its own score.
        changes = [s for s in states if s is not None]
        return ChangeBatch(changes, int(members[-1][1]) if members else cursor)

    async def audit_log(self, *, limit: int = 50, cursor: str | None = None) -> AuditPage:
        if cursor is not None and not _STREAM_ID.fullmatch(cursor):
            raise ValueError("the cursor is not one this server handed out")
        size = clamp_limit(limit)
        top = f"({cursor}" if cursor is not None else "+"
        rows = await self._call(self.redis.xrevrange(self._k("audit"), top, "-", count=size + 1))
        page = rows[:size]
        records = []
        for _, fields in page:
            f = {_text(k): _text(v) for k, v in fields.items()}
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
        next_cursor = _text(page[-1][0]) if len(rows) > size else None
        return AuditPage(records, next_cursor)

    async def ping(self) -> None:
        await self._call(cast("Awaitable[bool]", self.redis.ping()))

    async def close(self) -> None:
        await self.redis.aclose()
