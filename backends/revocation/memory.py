"""A process-local store: for tests and explicit opt-in (``memory://``) only.

Nothing survives a restart, and each process has its own list: a CLI revocation
never reaches a running server. ``jotguard serve`` warns loudly when it is used.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from backends.revocation.base import (
    AuditPage,
    AuditRecord,
    Change,
    ChangeBatch,
    EntryKey,
    Page,
    Revocation,
    audit_of,
)
from backends.revocation.core import StoreBase, clamp_limit, parse_cursor
from backends.revocation.policy import Denylist, merge
from backends.revocation.writeback import RESTORED_BY, restoration


class MemoryRevocationStore(StoreBase):
    durable = False

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._denylist = Denylist()
        self._seq = 0
        self._epoch = secrets.token_hex(8)  # its data lives and dies with this object
        self._audit: list[AuditRecord] = []

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    async def _write(self, incoming: Revocation, now: float) -> Revocation:
        self._denylist.purge(now)
        entry = merge(self._denylist.live(incoming.key, now), incoming, now)
        self._denylist.apply(Change(self._next_seq(), entry))
        self._audit.append(audit_of("revoke", entry, now, incoming.actor, incoming.reason))
        return entry

    async def _restore(self, states: list[Change], origin: str, now: float) -> int:
        written = 0
        for offered in states:
            keep = restoration(self._denylist.state(offered.entry.key), offered, origin, now)
            if keep is None:
                continue
            self._denylist.apply(Change(self._next_seq(), keep.entry, keep.removed, keep.origin))
            if not keep.removed:
                self._audit.append(audit_of("restore", keep.entry, now, RESTORED_BY, None))
            written += 1
        return written

    async def _fetch(self, keys: Sequence[EntryKey]) -> list[Revocation]:
        now = self.clock()
        return [e for e in (self._denylist.live(k, now) for k in keys) if e is not None]

    async def unrevoke(
        self, entry_id: str, *, reason: str | None = None, actor: str | None = None
    ) -> Revocation | None:
        now = self.clock()
        for change in self._denylist.states():
            entry = change.entry
            if entry.id == entry_id and self._denylist.live(entry.key, now) is not None:
                self._denylist.apply(Change(self._next_seq(), entry, removed=True))
                self._audit.append(audit_of("unrevoke", entry, now, actor, reason))
                return entry
        return None

    async def list_entries(self, *, limit: int = 50, cursor: str | None = None) -> Page:
        before = parse_cursor(cursor)
        now = self.clock()
        live = sorted(
            (
                c
                for c in self._denylist.states()
                if not c.removed and c.entry.expires_at > now and (before is None or c.seq < before)
            ),
            key=lambda c: c.seq,
            reverse=True,
        )
        page = live[: clamp_limit(limit)]
        more = len(live) > len(page)
        return Page([c.entry for c in page], str(page[-1].seq) if more else None)

    async def changes(self, cursor: int = 0, *, limit: int = 500) -> ChangeBatch:
        newer = sorted((c for c in self._denylist.states() if c.seq > cursor), key=lambda c: c.seq)
        batch = newer[: clamp_limit(limit)]
        # Nothing rewrites this store's history under a follower: no state at the cursor.
        next_cursor = batch[-1].seq if batch else cursor
        return ChangeBatch(batch, next_cursor, self._epoch, self._seq, None)

    async def audit_log(self, *, limit: int = 50, cursor: str | None = None) -> AuditPage:
        end = parse_cursor(cursor)
        records = self._audit[: end if end is not None else len(self._audit)]
        page = list(reversed(records[-clamp_limit(limit) :])) if records else []
        start = len(records) - len(page)
        return AuditPage(page, str(start) if start > 0 else None)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
