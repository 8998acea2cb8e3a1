"""An in-process mirror of a revocation store: the per-request check is a memory lookup.

The mirror follows the store's change feed (:meth:`RevocationStore.changes`) into a
:class:`~backends.revocation.policy.Denylist`, so it decides exactly as the store does.
It polls the feed every ``poll_interval`` seconds, and at once when woken (Redis
pub/sub, see :mod:`backends.revocation.notify`). It fails closed: when no poll has
succeeded for ``freshness`` seconds (store down, or too slow), checks raise
``BackendUnavailable`` (503), exactly as a direct check against a store that is down;
the next successful poll makes it current again, without a restart.

Writes go through to the store and are applied here before they return, so a
revocation acknowledged by this process is enforced by this process at once; other
processes see it on their next poll (or pub/sub wake-up).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from backends.errors import BackendUnavailable
from backends.principal import Principal
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

if TYPE_CHECKING:
    from backends.revocation.notify import ChangeNotifier

log = logging.getLogger("jotguard.revocation")

DEFAULT_POLL_INTERVAL = 1.0
DEFAULT_FRESHNESS = 5.0
FEED_PAGE = 500  # a shorter page means the feed has nothing more
PURGE_EVERY = 60.0
PURGE_CHUNK = 10_000


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

    def apply_compact(self, change: Change) -> None:
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
        self.apply(Change(change.seq, slim, change.removed))

    def covering(self, principal: Principal, clock: Callable[[], float]) -> Revocation | None:
        """:meth:`decide`, without running the policy when no entry at all is kept under a
        key that could cover the token: the per-request common case, and the policy
        over no entries revokes nothing."""
        states = self._states
        for key in candidate_keys(principal):  # a loop: any() over a generator costs more
            if key in states:
                return self.decide(principal, clock())
        return None

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
        self.confirmed_at: float | None = None
        self._sync_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._healthy = True
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
        """Apply every change after the cursor; on success the mirror is current as of
        the moment this call began.

        :raises BackendUnavailable: the store did not answer.
        """
        async with self._sync_lock:
            started = self.monotonic()
            # Until the first load completes no request is answered from the mirror, so
            # pages go in as they arrive (a million entries never sit in a backlog). Once
            # current, a backlog goes in at once after its last page: no request sees half.
            loading = self.confirmed_at is None
            cursor = self.cursor
            changes: list[Change] = []
            while True:
                batch = await self.store.changes(cursor, limit=FEED_PAGE)
                cursor = max(cursor, batch.cursor)
                if loading:
                    self._apply(batch.changes, cursor)
                else:
                    changes.extend(batch.changes)
                if len(batch.changes) < FEED_PAGE:
                    break
            self._apply(changes, cursor)
            if self.confirmed_at is None or started > self.confirmed_at:
                self.confirmed_at = started

    def _apply(self, changes: list[Change], cursor: int) -> None:
        for change in changes:
            self.denylist.apply_compact(change)
        self.cursor = cursor

    async def poll(self) -> bool:
        """One sync, logging (once per outage) rather than raising; True if it succeeded."""
        try:
            await self.sync()
        except BackendUnavailable as exc:
            if self._healthy:
                log.warning(
                    "revocation mirror cannot reach the store (%s); protected requests get"
                    " 503 once the mirror is %.0fs old",
                    exc.description,
                    self.freshness,
                )
            self._healthy = False
            return False
        if not self._healthy:
            log.info("revocation mirror caught up with the store again")
        self._healthy = True
        return True

    async def _follow(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            self._wake.clear()
            try:
                await self.poll()
                await self._purge_expired()
            except Exception:  # never let the follower die: the mirror would go stale
                log.exception("revocation mirror: unexpected error while following the feed")

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
            raise BackendUnavailable(
                "The revocation list cannot be confirmed current", retry_after=5
            )
        return self.denylist.covering(principal, self.clock)

    async def list_entries(self, *, limit: int = 50, cursor: str | None = None) -> Page:
        return await self.store.list_entries(limit=limit, cursor=cursor)

    async def changes(self, cursor: int = 0, *, limit: int = 500) -> ChangeBatch:
        return await self.store.changes(cursor, limit=limit)

    async def audit_log(self, *, limit: int = 50, cursor: str | None = None) -> AuditPage:
        return await self.store.audit_log(limit=limit, cursor=cursor)

    async def ping(self) -> None:
        """Readiness: the store answers and the mirror is current (else requests get 503)."""
        await self.store.ping()
        if not self.is_current():
            raise BackendUnavailable("The revocation list is still loading or behind the store")

    # -- writes: through to the store, then applied here before returning ------------------

    async def _applied(self, entry: Revocation, *, removed: bool = False) -> None:
        try:
            await self.sync()  # the store just answered: bring in this write and any before it
        except BackendUnavailable:
            # Acknowledged by the store all the same: enforce it here now. A number between
            # the cursor and the write's own keeps it until the feed brings the real one.
            known = self.denylist.state(entry.key)
            seq = max(self.cursor, known.seq if known is not None else 0) + 1
            self.denylist.apply_compact(Change(seq, entry, removed))

    async def revoke_token(
        self,
        jti: str,
        *,
        issuer: str,
        expires_at: float,
        reason: str | None = None,
        actor: str | None = None,
    ) -> Revocation:
        entry = await self.store.revoke_token(
            jti, issuer=issuer, expires_at=expires_at, reason=reason, actor=actor
        )
        await self._applied(entry)
        return entry

    async def revoke_subject(
        self,
        subject: str,
        *,
        before: float,
        issuer: str | None = None,
        reason: str | None = None,
        actor: str | None = None,
    ) -> Revocation:
        entry = await self.store.revoke_subject(
            subject, before=before, issuer=issuer, reason=reason, actor=actor
        )
        await self._applied(entry)
        return entry

    async def revoke_client(
        self,
        client_id: str,
        *,
        before: float,
        issuer: str | None = None,
        reason: str | None = None,
        actor: str | None = None,
    ) -> Revocation:
        entry = await self.store.revoke_client(
            client_id, before=before, issuer=issuer, reason=reason, actor=actor
        )
        await self._applied(entry)
        return entry

    async def unrevoke(
        self, entry_id: str, *, reason: str | None = None, actor: str | None = None
    ) -> Revocation | None:
        entry = await self.store.unrevoke(entry_id, reason=reason, actor=actor)
        if entry is not None:
            await self._applied(entry, removed=True)
        return entry

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.store.close()
