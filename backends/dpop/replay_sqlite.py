"""The replay cache in an SQLite file: one proof accepted once by every process on a machine.

``jotguard serve --workers N`` without Redis runs N processes that each would otherwise
remember only their own proofs, so one proof could be spent once per worker. Here they
share one table: a proof's key (:func:`~backends.dpop.replay.replay_key`) is its
primary key, and spending it is one ``INSERT ... ON CONFLICT`` in a write transaction,
which SQLite's file lock makes atomic across processes: of two workers given the same
proof, exactly one inserts it.

A file of its own (``dpop-replay.sqlite3`` in the data directory), not a table in the
revocation store's: it is written on every DPoP request, and SQLite has one writer per
file, so revocations would queue behind proofs; the revocation store need not be SQLite
(workers on MongoDB need this file too); and it holds nothing older than a proof's few
minutes, where the revocation file is kept and backed up.

Bounded like the memory cache: a count of the rows is kept beside them (by triggers, in
the same transaction), and at ``max_entries`` live rows a new proof is refused with
:class:`BackendUnavailable` (503 + Retry-After) rather than forgetting one still
acceptable. Each insert first deletes a few expired rows (:data:`PURGE_BATCH`, by the
expiry index), so the table never holds much beyond what is live, and no sweep holds the
write lock for long.

Failure is a 503, never an accept: a file that cannot be opened or written, a lock held
past the budget (:data:`DEFAULT_TIMEOUT`, also SQLite's busy timeout) all raise
:class:`BackendUnavailable`.

Durability: ``synchronous=NORMAL`` (in WAL mode, a commit survives the process crashing;
only an operating-system crash or power cut may lose the last ones). The cache decides
nothing that outlives a proof's few minutes, and the memory cache it replaces forgets
everything at every restart; an fsync per proof would put the disk's latency in every
DPoP request (measured on the runner's thread: 32 µs a proof with NORMAL, 188 µs with
FULL, on a virtual machine's disk).
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
from pathlib import Path

from backends.dpop.replay import DEFAULT_MAX_ENTRIES, replay_key
from backends.errors import BackendUnavailable
from backends.storage.sqlite import SQLiteRunner, create_schema

FILE_NAME = "dpop-replay.sqlite3"
DEFAULT_TIMEOUT = 0.5
# Expired rows deleted by each insert: more than the one it adds, so a steady stream of
# proofs keeps the table at what is live; few, so no insert holds the lock for long.
PURGE_BATCH = 8

SCHEMA = """
CREATE TABLE IF NOT EXISTS dpop_replay (
    key BLOB PRIMARY KEY,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dpop_replay_expiry ON dpop_replay (expires_at);
CREATE TABLE IF NOT EXISTS dpop_replay_size (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    entries INTEGER NOT NULL
);
INSERT OR IGNORE INTO dpop_replay_size VALUES (1, (SELECT count(*) FROM dpop_replay));
CREATE TRIGGER IF NOT EXISTS dpop_replay_added AFTER INSERT ON dpop_replay
BEGIN UPDATE dpop_replay_size SET entries = entries + 1; END;
CREATE TRIGGER IF NOT EXISTS dpop_replay_removed AFTER DELETE ON dpop_replay
BEGIN UPDATE dpop_replay_size SET entries = entries - 1; END;
"""

PURGE = (
    "DELETE FROM dpop_replay WHERE key IN (SELECT key FROM dpop_replay"
    " WHERE expires_at < ? ORDER BY expires_at LIMIT ?)"
)
# A row still there but expired (beyond the purge's batch) is spent again, not a replay.
# Expired means before now: at its ``expires_at`` a proof is still accepted.
SPEND = (
    "INSERT INTO dpop_replay (key, expires_at) VALUES (?, ?)"
    " ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at"
    " WHERE dpop_replay.expires_at < ?"
)


def _prepare(connection: sqlite3.Connection) -> None:
    connection.execute("PRAGMA synchronous=NORMAL")  # see the module: no fsync per proof
    create_schema(SCHEMA)(connection)


class SQLiteReplayCache:
    """:class:`~backends.dpop.replay.ReplayCache` in the SQLite file at ``path``; opened
    (and created) on the first proof, so building one touches no file."""

    def __init__(
        self,
        path: Path,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if max_entries < 1 or timeout <= 0:
            raise ValueError("max_entries and timeout must be positive")
        self.path = path
        self.max_entries = max_entries
        self.timeout = timeout
        """Seconds a proof may wait for the file (its lock) before the request gets 503."""
        self._runner = SQLiteRunner(
            path,
            setup=_prepare,
            busy_timeout=timeout,
            name="DPoP replay cache",
            thread_name="jotguard-dpop-replay",
        )

    async def first_use(self, jkt: str, jti: str, *, expires_at: float, now: float) -> bool:
        key = replay_key(jkt, jti)

        def spend(db: sqlite3.Connection) -> bool:
            db.execute(PURGE, (now, PURGE_BATCH))
            if db.execute(SPEND, (key, expires_at, now)).rowcount == 0:
                return False  # there, unexpired: a replay
            (entries,) = db.execute("SELECT entries FROM dpop_replay_size").fetchone()
            if entries > self.max_entries:
                raise self._full(db, now)  # rolls the insert back
            return True

        try:
            # Past the budget the request is answered; a call not yet started is dropped,
            # one already running may still record its proof (a retry brings a new proof,
            # as every request does).
            return await asyncio.wait_for(self._runner.write(spend), self.timeout)
        except asyncio.TimeoutError:
            raise BackendUnavailable("The DPoP replay cache cannot answer (timed out)") from None

    def _full(self, db: sqlite3.Connection, now: float) -> BackendUnavailable:
        (soonest,) = db.execute("SELECT min(expires_at) FROM dpop_replay").fetchone()
        return BackendUnavailable(
            "Too many recent DPoP proofs to check this one for replay",
            retry_after=max(1, math.ceil((soonest or now) - now)),
        )

    async def entries(self) -> int:
        """How many proofs the file holds (expired ones not yet purged included)."""
        row = await self._runner.read(
            lambda db: db.execute("SELECT entries FROM dpop_replay_size").fetchone()
        )
        return int(row[0])

    async def aclose(self) -> None:
        await self._runner.close()
