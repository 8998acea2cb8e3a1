"""The revocation mirror's copy of its store: a compact denylist kept in step with the feed.

:class:`Replica` reads the store's change feed from its cursor into a
:class:`CompactDenylist`. When the feed shows the store lost or replaced its data (a
new epoch, or a change counter set back), it reads the store in full and hands what it
held that the store no longer has to :class:`~backends.revocation.writeback.Recovery`,
to be enforced meanwhile and written back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Literal

from backends.errors import BackendUnavailable
from backends.principal import Principal
from backends.revocation import writeback
from backends.revocation.base import (
    Change,
    ChangeBatch,
    EntryKey,
    Revocation,
    RevocationStore,
)
from backends.revocation.policy import Denylist, candidate_keys

LineageBreak = Literal["epoch_changed", "counter_behind"]

log = logging.getLogger("jotguard.revocation")

FEED_PAGE = 500  # a shorter page means the feed has nothing more
RELOAD_ATTEMPTS = 3  # the epoch moved again while the store was being read in full


class CompactDenylist(Denylist):
    """A Denylist that stores entries compactly and purges without stalling the loop."""

    def __init__(self) -> None:
        super().__init__()
        self._strings: dict[str, str] = {}

    def _shared(self, value: str | None) -> str | None:
        # Kinds and issuers repeat across millions of entries: keep one copy of each.
        if value is None:
            return None
        return self._strings.setdefault(value, value)

    def _slim(self, change: Change) -> Change:
        entry = change.entry
        # The decision needs no id, time of revocation, reason or actor: the store keeps
        # them (list, audit); the mirror keeps what decides (kind, issuer, value, cutoff,
        # expiry), about a fifth less memory per entry.
        slim = Revocation(
            "",
            self._shared(entry.kind),  # type: ignore[arg-type]
            entry.value,
            self._shared(entry.issuer),
            entry.cutoff,
            entry.expires_at,
            0.0,
        )
        return Change(change.seq, slim, change.removed)

    def apply_compact(self, change: Change) -> None:
        self.apply(self._slim(change))

    def covering(self, principal: Principal, clock: Callable[[], float]) -> Revocation | None:
        """:meth:`decide`, without running the policy when no entry at all is kept under a
        key that could cover the token: the per-request common case, and the policy
        over no entries revokes nothing."""
        states = self._states
        for key in candidate_keys(principal):  # a loop: any() over a generator costs more
            if key in states:
                return self.decide(principal, clock())
        return None

    def put(self, change: Change) -> Change:
        """Set the key's state whatever its number (a write acknowledged here, an entry
        held for the store) and return it as kept; any change the feed brings above
        ``change.seq`` replaces it."""
        slim = self._slim(change)
        self._states[slim.entry.key] = slim
        return slim

    def drop(self, key: EntryKey) -> None:
        self._states.pop(key, None)

    def keys(self) -> list[EntryKey]:
        return list(self._states)

    def purge_keys(self, keys: Iterable[EntryKey], now: float) -> int:
        """Forget those of ``keys`` that expired (entries and tombstones alike)."""
        gone = 0
        for key in keys:
            change = self._states.get(key)
            if change is not None and change.entry.expires_at <= now:
                del self._states[key]
                gone += 1
        return gone

    def __len__(self) -> int:
        return len(self._states)


class Replica:
    """What the mirror holds of ``store``, and where in the store's feed it has read to.

    :param recovery: told of every reload, for what the store lost.
    :param clock: wall clock, for entry expiry (entries carry epoch times).
    """

    def __init__(
        self,
        store: RevocationStore,
        recovery: writeback.Recovery,
        clock: Callable[[], float],
    ) -> None:
        self.store = store
        self.recovery = recovery
        self.clock = clock
        self.denylist = CompactDenylist()
        self.cursor = 0
        self.epoch: str | None = None
        self.at_cursor: Change | None = None  # the feed's state numbered the cursor, as read

    async def catch_up(self, *, loading: bool) -> bool:
        """Apply every change after the cursor, or reload if the store lost its data;
        True if it reloaded. One at a time: the mirror serialises the calls.

        :param loading: no request is answered from the copy yet.
        :raises BackendUnavailable: the store did not answer.
        """
        # Until the first load completes no request is answered from the mirror, so
        # pages go in as they arrive (a million entries never sit in a backlog). Once
        # current, a backlog goes in at once after its last page: no request sees half.
        cursor = self.cursor
        changes: list[Change] = []
        while True:
            batch = await self.store.changes(cursor, limit=FEED_PAGE)
            broken = self._lineage_break(batch, cursor)
            if broken is not None:
                self._apply(changes, cursor)  # read from the old feed: held, if lost
                await self._reload(broken)
                return True
            self.epoch = batch.epoch
            cursor = max(cursor, batch.cursor)
            if loading:
                self._apply(batch.changes, cursor)
            else:
                changes.extend(batch.changes)
            if len(batch.changes) < FEED_PAGE:
                self._apply(changes, cursor)
                return False

    def _lineage_break(self, batch: ChangeBatch, cursor: int) -> LineageBreak | None:
        """Why ``batch`` cannot follow what the mirror read before, if it cannot."""
        if self.epoch is None:
            return None  # nothing read yet: whatever the store holds is the start
        if batch.epoch != self.epoch:
            return "epoch_changed"
        if batch.head < cursor:
            # The same feed with its counter set back (a failover to a lagging replica, a
            # restored backup): numbers at or below the cursor are being handed out again.
            return "counter_behind"
        if cursor == self.cursor and _rewritten(self.at_cursor, batch.at_cursor):
            # Set back, and written past the cursor again before this poll.
            return "counter_behind"
        return None

    def _apply(self, changes: list[Change], cursor: int) -> None:
        for change in changes:
            self.denylist.apply_compact(change)
        self.at_cursor = _numbered(
            changes, cursor, self.at_cursor if cursor == self.cursor else None
        )
        self.cursor = cursor

    # -- a store that lost or replaced its data ------------------------------------------

    async def _reload(self, reason: LineageBreak) -> None:
        """Read the store in full; keep enforcing, and write back, what this process
        held that the store no longer has."""
        held, origin = self.denylist, self.epoch
        assert origin is not None
        fresh, cursor, epoch, at_cursor = await self._load_all()
        missing = self.recovery.reloaded(held.states(), fresh, origin, reason, self.clock())
        self.denylist, self.epoch, self.cursor = fresh, epoch, cursor
        self.at_cursor = at_cursor
        why = (
            "its feed has a new epoch"
            if reason == "epoch_changed"
            else ("its change counter was set back below what this process had read")
        )
        log.error(
            "the revocation store lost or replaced its data (%s): reloaded it in full"
            " (%d entries); writing back the %d entries this process held that it no"
            " longer has%s",
            why,
            len(fresh),
            len(missing),
            writeback.examples(missing),
        )

    async def _load_all(self) -> tuple[CompactDenylist, int, str, Change | None]:
        for _ in range(RELOAD_ATTEMPTS):
            fresh = CompactDenylist()
            cursor = 0
            epoch: str | None = None
            at_cursor: Change | None = None
            while True:
                batch = await self.store.changes(cursor, limit=FEED_PAGE)
                if epoch is not None and batch.epoch != epoch:
                    break  # replaced again while being read: start over
                epoch = batch.epoch
                for change in batch.changes:
                    fresh.apply_compact(change)
                next_cursor = max(cursor, batch.cursor)
                at_cursor = _numbered(
                    batch.changes, next_cursor, at_cursor if next_cursor == cursor else None
                )
                cursor = next_cursor
                if len(batch.changes) < FEED_PAGE:
                    return fresh, cursor, epoch, at_cursor
        raise BackendUnavailable("The revocation store keeps replacing its data")


def _numbered(changes: list[Change], cursor: int, before: Change | None) -> Change | None:
    """The state numbered ``cursor`` among ``changes`` (else ``before``, read earlier)."""
    for change in reversed(changes):
        if change.seq == cursor:
            return change
    return before


def _rewritten(read: Change | None, found: Change | None) -> bool:
    """Whether the store's state numbered the cursor is not the one read there."""
    if read is None or found is None:
        return False  # nothing to compare: rewritten since, or expired and pruned
    return found.entry.key != read.entry.key or not writeback.decides_alike(found, read)
