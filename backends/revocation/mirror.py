"""An in-process mirror of a revocation store: the per-request check is a memory lookup.

The mirror follows the store's change feed (:meth:`RevocationStore.changes`) into a
:class:`~backends.revocation.policy.Denylist`, so it decides exactly as the store does.
It polls the feed every ``poll_interval`` seconds, and at once when woken (Redis
pub/sub, see :mod:`backends.revocation.notify`). It fails closed: when no poll has
succeeded for ``freshness`` seconds (store down, or too slow), checks raise
``BackendUnavailable`` (503), exactly as a direct check against a store that is down;
the next successful poll makes it current again, without a restart.

Writes go through to the store and are applied here before they return, whatever
the feed says, so a revocation acknowledged by this process is enforced by this process
at once; other processes see it on their next poll (or pub/sub wake-up).

A store that lost or replaced its data shows a new feed epoch, or a change counter
below the mirror's cursor: the mirror then reloads it in full, keeps enforcing what it
held that the store no longer has, and writes that back to the store
(:mod:`backends.revocation.writeback`), logged, counted and noted for ``/readyz``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Literal, TypeVar

from backends.errors import BackendUnavailable
from backends.outage import Outage
from backends.principal import Principal
from backends.revocation import writeback
from backends.revocation.base import (
    AuditPage,
    Change,
    ChangeBatch,
    EntryKey,
    Page,
    Revocation,
    RevocationStore,
)
from backends.revocation.policy import Denylist, candidate_keys, describe
from backends.telemetry import Sample

if TYPE_CHECKING:
    from backends.revocation.notify import ChangeNotifier

T = TypeVar("T")
LineageBreak = Literal["epoch_changed", "counter_behind"]

log = logging.getLogger("jotguard.revocation")

DEFAULT_POLL_INTERVAL = 1.0
DEFAULT_FRESHNESS = 5.0
FEED_PAGE = 500  # a shorter page means the feed has nothing more
PURGE_EVERY = 60.0
PURGE_CHUNK = 10_000
WRITE_BACK_CHUNK = 500
RELOAD_ATTEMPTS = 3  # the epoch moved again while the store was being read in full


class _MirrorDenylist(Denylist):
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


class RevocationMirror:
    """A :class:`RevocationStore` that reads from memory and writes through to ``store``.

    :param poll_interval: seconds between polls of the change feed.
    :param freshness: seconds without a successful poll after which checks fail closed.
    :param clock: wall clock, for entry expiry (entries carry epoch times).
    :param monotonic: for freshness; never jumps with the wall clock.
    :param notifier: the store's change announcements (Redis pub/sub): each one wakes
        the follower to poll at once.
    """

    def __init__(
        self,
        store: RevocationStore,
        *,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        freshness: float = DEFAULT_FRESHNESS,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        notifier: ChangeNotifier | None = None,
    ) -> None:
        if not 0 < poll_interval < freshness:
            raise ValueError("the poll interval must be positive and shorter than freshness")
        self.store = store
        self.durable = store.durable
        self.poll_interval = poll_interval
        self.freshness = freshness
        self.clock = clock
        self.monotonic = monotonic
        self.notifier = notifier
        self.denylist = _MirrorDenylist()
        self.cursor = 0
        self.epoch: str | None = None
        self.at_cursor: Change | None = None  # the feed's state numbered the cursor, as read
        self.confirmed_at: float | None = None
        self.outage = Outage(
            "revocation store",
            log,
            consequence=f"; protected requests get 503 once the revocation list is"
            f" {freshness:g}s old",
            monotonic=monotonic,
        )
        self.recovery = writeback.Recovery(clock)
        self._sync_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._last_purge = 0.0

    # -- following the feed --------------------------------------------------------------

    async def start(self) -> None:
        """Load the store's list (if it answers) and follow its feed from then on."""
        if self.notifier is not None:
            listening = self.notifier.listen(self.wake)
            self._tasks.append(asyncio.create_task(listening, name="revocation-notifications"))
        await self.poll()
        self._tasks.append(asyncio.create_task(self._follow(), name="revocation-mirror"))

    def wake(self) -> None:
        """Poll now rather than at the next interval: a change was announced."""
        self._wake.set()

    async def sync(self) -> None:
        """Apply every change after the cursor (or reload, if the store lost its data);
        on success the mirror is current as of the moment this call began.

        :raises BackendUnavailable: the store did not answer.
        """
        async with self._sync_lock:
            await self._sync_locked()

    async def _sync_locked(self) -> None:
        started = self.monotonic()
        # Until the first load completes no request is answered from the mirror, so
        # pages go in as they arrive (a million entries never sit in a backlog). Once
        # current, a backlog goes in at once after its last page: no request sees half.
        loading = self.confirmed_at is None
        cursor = self.cursor
        changes: list[Change] = []
        while True:
            batch = await self.store.changes(cursor, limit=FEED_PAGE)
            broken = self._lineage_break(batch, cursor)
            if broken is not None:
                self._apply(changes, cursor)  # read from the old feed: held, if lost
                await self._reload(broken)
                break
            self.epoch = batch.epoch
            cursor = max(cursor, batch.cursor)
            if loading:
                self._apply(batch.changes, cursor)
            else:
                changes.extend(batch.changes)
            if len(batch.changes) < FEED_PAGE:
                self._apply(changes, cursor)
                break
        if self.confirmed_at is None or started > self.confirmed_at:
            self.confirmed_at = started

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
        self.wake()  # the follower writes back at once
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

    async def _load_all(self) -> tuple[_MirrorDenylist, int, str, Change | None]:
        for _ in range(RELOAD_ATTEMPTS):
            fresh = _MirrorDenylist()
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

    async def _write_back(self) -> None:
        """Write back what a reload found lost; once the store has it all, the feed
        alone decides again."""
        if not await self.recovery.write_pending(self.store, WRITE_BACK_CHUNK):
            return
        async with self._sync_lock:
            await self._sync_locked()  # brings in what was written back
            self.recovery.release(self.denylist)

    def loss_note(self) -> str | None:
        """For ``/readyz``: that the store lost its data lately, and what was done."""
        return self.recovery.note()

    # -- polling ---------------------------------------------------------------------------

    async def poll(self) -> bool:
        """One sync, logging (once per outage) rather than raising; True if it succeeded."""
        try:
            await self.sync()
        except BackendUnavailable as exc:
            self.outage.failed(exc.description)
            return False
        self.outage.answered()
        return True

    async def _follow(self) -> None:
        while True:
            await self._woken_or_due()
            self._wake.clear()
            try:
                if await self.poll() and self.recovery.busy:
                    await self._write_back()
                await self._purge_expired()
            except BackendUnavailable:
                pass  # the write-back's own sync failed: the next poll says so, and retries
            except Exception:  # never let the follower die: the mirror would go stale
                log.exception("revocation mirror: unexpected error while following the feed")

    async def _woken_or_due(self) -> None:
        # Not asyncio.wait_for: before Python 3.12 it swallows a cancellation that comes
        # as the wait ends (gh-86296), and close() would wait for this task forever.
        waiting = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({waiting}, timeout=self.poll_interval)
        finally:
            waiting.cancel()

    async def _purge_expired(self) -> None:
        now = self.monotonic()
        if now - self._last_purge < PURGE_EVERY:
            return
        self._last_purge = now
        keys = self.denylist.keys()
        for start in range(0, len(keys), PURGE_CHUNK):
            self.denylist.purge_keys(keys[start : start + PURGE_CHUNK], self.clock())
            await asyncio.sleep(0)  # let requests run between chunks

    def is_current(self) -> bool:
        confirmed = self.confirmed_at
        return confirmed is not None and self.monotonic() - confirmed <= self.freshness

    def telemetry(self) -> Iterator[Sample]:
        yield Sample(
            "revocation_mirror_entries",
            "gauge",
            "Revocation entries and un-revocations this process's mirror holds.",
            len(self.denylist),
        )
        if self.confirmed_at is not None:
            yield Sample(
                "revocation_mirror_age_seconds",
                "gauge",
                "Seconds since the mirror last confirmed it is current with its store.",
                self.monotonic() - self.confirmed_at,
            )
        yield from self.recovery.telemetry()

    # -- reads -----------------------------------------------------------------------------

    async def find(self, principal: Principal) -> Revocation | None:
        """The entry that revokes ``principal``'s token, or None.

        :raises BackendUnavailable: the mirror is older than the freshness bound.
        """
        return self._find_now(principal)

    async def is_revoked(self, principal: Principal) -> str | None:
        # On every protected request: one coroutine, not one awaiting find().
        found = self._find_now(principal)
        return describe(found) if found is not None else None

    def _find_now(self, principal: Principal) -> Revocation | None:
        if not self.is_current():
            self.outage.refused(self._staleness())
            raise BackendUnavailable(
                "The revocation list cannot be confirmed current", retry_after=5
            )
        return self.denylist.covering(principal, self.clock)

    def _staleness(self) -> str:
        if self.confirmed_at is None:
            return "the revocation list is still loading"
        return f"the revocation list is {self.monotonic() - self.confirmed_at:.0f}s old"

    async def _through(self, operation: Awaitable[T]) -> T:
        """A call the store answers (writes, lists): its failure is a request refused."""
        try:
            return await operation
        except BackendUnavailable as exc:
            self.outage.refused(exc.description)
            raise

    async def list_entries(self, *, limit: int = 50, cursor: str | None = None) -> Page:
        return await self._through(self.store.list_entries(limit=limit, cursor=cursor))

    async def changes(self, cursor: int = 0, *, limit: int = 500) -> ChangeBatch:
        return await self.store.changes(cursor, limit=limit)

    async def audit_log(self, *, limit: int = 50, cursor: str | None = None) -> AuditPage:
        return await self._through(self.store.audit_log(limit=limit, cursor=cursor))

    async def ping(self) -> None:
        """Readiness: the store answers and the mirror is current (else requests get 503)."""
        await self.store.ping()
        if not self.is_current():
            raise BackendUnavailable("The revocation list is still loading or behind the store")

    # -- writes: through to the store, then applied here before returning ------------------

    async def _written(
        self, key: EntryKey | None, write: Awaitable[Revocation | None], *, removed: bool = False
    ) -> Revocation | None:
        """Write through, then enforce the result here at once, whatever the feed says
        (it may be behind, or the store may have lost its data meanwhile)."""
        denylist = self.denylist
        before = denylist.state(key) if key is not None else None
        entry = await self._through(write)
        if entry is None:
            return None
        # Unless the feed brought news of this key while the write was in flight (this
        # write, or one after it): then the feed's word stands. At the cursor's number, so
        # the feed's own record of this write (numbered above it) replaces it.
        if self.denylist is not denylist or key is None or denylist.state(key) is before:
            self.denylist.put(Change(self.cursor, entry, removed))
        with contextlib.suppress(BackendUnavailable):
            await self.sync()  # the store just answered: bring in this write and any before it
        return entry

    async def revoke_token(
        self,
        jti: str,
        *,
        issuer: str,
        expires_at: float,
        reason: str | None = None,
        actor: str | None = None,
    ) -> Revocation:
        write = self.store.revoke_token(
            jti, issuer=issuer, expires_at=expires_at, reason=reason, actor=actor
        )
        return await self._revoked(("jti", issuer, jti), write)

    async def revoke_subject(
        self,
        subject: str,
        *,
        before: float,
        issuer: str | None = None,
        reason: str | None = None,
        actor: str | None = None,
    ) -> Revocation:
        write = self.store.revoke_subject(
            subject, before=before, issuer=issuer, reason=reason, actor=actor
        )
        return await self._revoked(("sub", issuer, subject), write)

    async def revoke_client(
        self,
        client_id: str,
        *,
        before: float,
        issuer: str | None = None,
        reason: str | None = None,
        actor: str | None = None,
    ) -> Revocation:
        write = self.store.revoke_client(
            client_id, before=before, issuer=issuer, reason=reason, actor=actor
        )
        return await self._revoked(("client", issuer, client_id), write)

    async def _revoked(self, key: EntryKey, write: Awaitable[Revocation]) -> Revocation:
        entry = await self._written(key, write)
        assert entry is not None
        return entry

    async def unrevoke(
        self, entry_id: str, *, reason: str | None = None, actor: str | None = None
    ) -> Revocation | None:
        # The key is known only once the store answers: the result is applied as is.
        write = self.store.unrevoke(entry_id, reason=reason, actor=actor)
        return await self._written(None, write, removed=True)

    async def restore(self, states: Sequence[Change], *, origin: str) -> int:
        return await self._through(self.store.restore(states, origin=origin))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.store.close()


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
