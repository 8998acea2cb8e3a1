"""An in-process mirror of a revocation store: the per-request check is a memory lookup.

The mirror follows the store's change feed (:meth:`RevocationStore.changes`) into a
:class:`~backends.revocation.policy.Denylist` (its copy, :mod:`backends.revocation.replica`),
so it decides exactly as the store does.
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
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, TypeVar

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
    RevokeRequest,
)
from backends.revocation.policy import describe
from backends.revocation.replica import Replica
from backends.tasks import cancel_all
from backends.telemetry import Sample

if TYPE_CHECKING:
    from backends.revocation.notify import ChangeNotifier

T = TypeVar("T")

log = logging.getLogger("jotguard.revocation")

DEFAULT_POLL_INTERVAL = 1.0
DEFAULT_FRESHNESS = 5.0
PURGE_EVERY = 60.0
PURGE_CHUNK = 10_000
WRITE_BACK_CHUNK = 500


class RevocationMirror(RevocationStore):
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
        self.confirmed_at: float | None = None
        self.outage = Outage(
            "revocation store",
            log,
            consequence=f"; protected requests get 503 once the revocation list is"
            f" {freshness:g}s old",
            monotonic=monotonic,
        )
        self.recovery = writeback.Recovery(clock)
        self.replica = Replica(store, self.recovery, clock)
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
        if await self.replica.catch_up(loading=self.confirmed_at is None):
            self.wake()  # reloaded: the follower writes back at once
        if self.confirmed_at is None or started > self.confirmed_at:
            self.confirmed_at = started

    async def _write_back(self) -> None:
        """Write back what a reload found lost; once the store has it all, the feed
        alone decides again."""
        if not await self.recovery.write_pending(self.store, WRITE_BACK_CHUNK):
            return
        async with self._sync_lock:
            await self._sync_locked()  # brings in what was written back
            self.recovery.release(self.replica.denylist)

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
        keys = self.replica.denylist.keys()
        for start in range(0, len(keys), PURGE_CHUNK):
            self.replica.denylist.purge_keys(keys[start : start + PURGE_CHUNK], self.clock())
            await asyncio.sleep(0)  # let requests run between chunks

    def is_current(self) -> bool:
        confirmed = self.confirmed_at
        return confirmed is not None and self.monotonic() - confirmed <= self.freshness

    def telemetry(self) -> Iterator[Sample]:
        yield Sample(
            "revocation_mirror_entries",
            "gauge",
            "Revocation entries and un-revocations this process's mirror holds.",
            len(self.replica.denylist),
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
        return self.replica.denylist.covering(principal, self.clock)

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
        denylist = self.replica.denylist
        before = denylist.state(key) if key is not None else None
        entry = await self._through(write)
        if entry is None:
            return None
        # Unless the feed brought news of this key while the write was in flight (this
        # write, or one after it): then the feed's word stands. At the cursor's number, so
        # the feed's own record of this write (numbered above it) replaces it.
        if self.replica.denylist is not denylist or key is None or denylist.state(key) is before:
            self.replica.denylist.put(Change(self.replica.cursor, entry, removed))
        with contextlib.suppress(BackendUnavailable):
            await self.sync()  # the store just answered: bring in this write and any before it
        return entry

    async def revoke(self, request: RevokeRequest) -> Revocation:
        entry = await self._written(request.key, self.store.revoke(request))
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
        await cancel_all(self._tasks)
        self._tasks.clear()
        await self.store.close()
