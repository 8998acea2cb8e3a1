"""Writing back what a store lost: entries a running mirror holds that its store no longer has.

A store can lose acknowledged revocations while instances run: a Redis without
persistence restarted or flushed, a failover to a lagging replica, an SQLite file
swapped for an older copy, a MongoDB counter reset. Every running mirror still holds
what it had read; when it notices the loss (a new feed epoch, or a change counter
below its cursor) it reloads the store in full and writes back what the store lacks,
so those revocations live in the store again, for every instance, including ones
started later.

Only what the store *lost* is written back; nothing that was removed on purpose:

- an expired entry is never written back (no token it covers is still accepted);
- un-revocations are written back too, as tombstones: a state written back carries its
  origin (the lost feed's epoch and the change number it had there), and of two states
  of one key written back from the same lost feed the later one stands. An entry
  un-revoked before the loss therefore stays un-revoked whenever any running mirror
  had seen the un-revocation, whichever mirror writes back first;
- a state the store wrote itself after the loss stands: a revocation written back
  merges into a live entry as revoking it again would (the later cutoff and expiry),
  and never replaces an un-revocation made after the loss; a tombstone written back
  never removes an entry the store holds of its own.

What no running mirror had read (a change made in the last moments before the loss,
before any mirror polled) cannot be written back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Protocol

from backends.errors import BackendUnavailable
from backends.revocation.base import Change, EntryKey
from backends.revocation.policy import merge, new_entry_id
from backends.telemetry import EventCounter, Sample

log = logging.getLogger("jotguard.revocation")

RESTORED_BY = "jotguard"
RESTORED_REASON = "written back by a running jotguard after the store lost it"
# What showed a mirror that its store lost or replaced its data.
REASONS = ("epoch_changed", "counter_behind")
NOTE_SECONDS = 3600.0  # how long /readyz mentions it


def restoration(existing: Change | None, offered: Change, origin: str, now: float) -> Change | None:
    """What a store keeps for ``offered`` (read as change ``offered.seq`` of feed
    ``origin``) over its own state ``existing`` of that key; None: leave it as it is.

    The result's ``seq`` is a placeholder (the store numbers the write) and its
    ``origin`` is what the store records with it.
    """
    entry = offered.entry
    if entry.expires_at <= now:
        return None
    mark = (origin, offered.seq)
    if existing is None or existing.entry.expires_at <= now:
        # Mirrors keep only what decides (no id, reason or actor): the entry gets new ones.
        fresh = replace(
            entry,
            id=entry.id or new_entry_id(),
            created_at=entry.created_at or now,
            reason=entry.reason or RESTORED_REASON,
            actor=entry.actor or RESTORED_BY,
        )
        return Change(0, fresh, offered.removed, mark)
    if existing.origin is not None and existing.origin[0] == origin:
        if offered.seq <= existing.origin[1]:
            return None  # a later state of the lost feed was written back already
        kept = replace(
            entry,
            id=existing.entry.id,
            created_at=existing.entry.created_at,
            reason=existing.entry.reason,
            actor=existing.entry.actor,
        )
        return Change(0, kept, offered.removed, mark)
    if offered.removed or existing.removed:
        return None  # the store's own state, written after the loss, stands
    merged = merge(existing.entry, entry, now)
    if merged == existing.entry:
        return None
    return Change(0, merged, False, existing.origin)


def decides_alike(a: Change, b: Change) -> bool:
    """Whether two states of one key make the same decisions (ids and reasons aside)."""
    if a.removed or b.removed:
        return a.removed and b.removed
    return a.entry.cutoff == b.entry.cutoff and a.entry.expires_at == b.entry.expires_at


def lost(
    held: Iterable[Change], current: Callable[[EntryKey], Change | None], now: float
) -> list[Change]:
    """The states of ``held`` (a mirror's) the store, whose state of a key is
    ``current(key)``, no longer has: candidates for :meth:`RevocationStore.restore`."""
    missing = []
    for change in held:
        if change.entry.expires_at <= now:
            continue
        known = current(change.entry.key)
        if known is None or not decides_alike(known, change):
            missing.append(change)
    return missing


class Held(Protocol):
    """The part of a mirror's denylist a :class:`Recovery` works on."""

    def state(self, key: EntryKey) -> Change | None: ...

    def put(self, change: Change) -> Change: ...

    def drop(self, key: EntryKey) -> None: ...


class Recovery:
    """A mirror's side of a store that lost its data: hold what it lacks, write it back,
    then let the store's feed decide again. Also its metrics and ``/readyz`` note."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        # Entries held for the store: (as held, the store's own state of the key then).
        self._held: dict[EntryKey, tuple[Change, Change | None]] = {}
        # Still to be written back: (the lost feed's epoch, its states).
        self._pending: list[tuple[str, list[Change]]] = []
        self._loss: tuple[float, str, int] | None = None  # when, why, how many
        self._written_since_loss = 0
        self._announced = True  # the last write-back's end was logged
        self.reloads = EventCounter(
            "revocation_store_reloads_total",
            "Times the revocation mirror found its store had lost or replaced its data"
            " and reloaded it in full, by what showed it.",
            ("reason",),
        )
        for reason in REASONS:
            self.reloads.inc(reason, amount=0)
        self.written_back = EventCounter(
            "revocation_entries_written_back_total",
            "Revocation entries (and un-revocations) this process wrote back to a store"
            " that had lost them.",
        )
        self.written_back.inc(amount=0)

    @property
    def busy(self) -> bool:
        """Something is still to be written back, held until the store has it, or not
        yet reported done."""
        return bool(self._pending or self._held or not self._announced)

    def reloaded(
        self, held: Iterable[Change], fresh: Held, origin: str, reason: str, now: float
    ) -> list[Change]:
        """The mirror replaced ``held`` (read from feed ``origin``) with ``fresh``, the
        store read in full: hold in ``fresh`` and queue for writing back what the store
        no longer has; those states."""
        missing = lost(held, fresh.state, now)
        self._held.clear()
        for change in missing:
            if not change.removed:
                self._hold(fresh, change, now)
        if missing:
            self._pending.append((origin, missing))
        self.reloads.inc(reason)
        self._loss = (now, reason, len(missing))
        self._written_since_loss = 0
        self._announced = False
        return missing

    def _hold(self, fresh: Held, change: Change, now: float) -> None:
        # Enforced as the store will once it is written back: over a live entry of the
        # store's own, merged as revoking again would. At the store's own number, so the
        # feed's next word on this key replaces it.
        key = change.entry.key
        known = fresh.state(key)
        entry = change.entry
        if known is not None and not known.removed and known.entry.expires_at > now:
            entry = merge(known.entry, entry, now)
        kept = fresh.put(Change(known.seq if known is not None else 0, entry))
        self._held[key] = (kept, known)

    async def write_pending(self, store: Restorer, chunk: int) -> bool:
        """Write back what is queued, ``chunk`` states a call; False if the store failed
        (the rest stays queued)."""
        while self._pending:
            origin, states = self._pending[0]
            part = states[:chunk]
            try:
                written = await store.restore(part, origin=origin)
            except BackendUnavailable as exc:
                log.debug("writing back revocations failed (%s); retrying", exc.description)
                return False
            del states[: len(part)]
            if not states:
                self._pending.pop(0)
            self.written_back.inc(amount=written)
            self._written_since_loss += written
        return True

    def release(self, current: Held) -> None:
        """Everything is written back and ``current`` has read the feed since: an entry
        still as held is one the store declined (see :func:`restoration`): follow the
        store."""
        if self._pending:
            return
        for key, (kept, known) in self._held.items():
            if current.state(key) is kept:
                if known is None:
                    current.drop(key)
                else:
                    current.put(known)
        self._held.clear()
        if not self._announced:
            self._announced = True
            log.warning(
                "wrote back %d revocation entries the store had lost", self._written_since_loss
            )

    def note(self) -> str | None:
        """For ``/readyz``: the store lost its data (within the last hour), and what was done."""
        if self._loss is None:
            return None
        at, reason, missing = self._loss
        pending = sum(len(states) for _, states in self._pending)
        if not pending and self.clock() - at > NOTE_SECONDS:
            return None
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
        note = f"the store lost or replaced its data at {stamp} ({reason}): reloaded in full"
        if pending:
            return f"{note}; writing back {pending} of {missing} entries it no longer had"
        return f"{note}; {self._written_since_loss} entries written back"

    def telemetry(self) -> Iterator[Sample]:
        yield from self.reloads.samples()
        yield from self.written_back.samples()


class Restorer(Protocol):
    async def restore(self, states: Sequence[Change], *, origin: str) -> int: ...


def examples(changes: list[Change], shown: int = 5) -> str:
    """A few of ``changes`` for a log line: kind and value (a jti, a subject; never a token)."""
    revoked = [c.entry for c in changes if not c.removed][:shown]
    if not revoked:
        return ""
    listed = ", ".join(f"{e.kind} {e.value[:64]!r}" for e in revoked)
    return f" (among them: {listed})"
