"""Change announcements that wake a mirror at once instead of at its next poll.

The Redis store publishes every committed change number on its channel (inside the
write's transaction). SQLite announces nothing, but ``PRAGMA data_version`` moves
whenever another connection commits to the file (the CLI, another process or worker):
checked every few tens of milliseconds, off the loop, it wakes the mirror only when it
moved, so a change reaches every process well within 100 ms while the change feed is
read only when there is something in it. A notifier only wakes the mirror, which then
reads the change feed as usual: an announcement carries no data to trust, and a lost
one (reconnect, outage) costs at most one poll interval, never correctness.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from redis.exceptions import RedisError

from backends.errors import BackendUnavailable
from backends.revocation.base import RevocationStore
from backends.revocation.redis import RedisRevocationStore
from backends.revocation.sqlite import SQLiteRevocationStore

log = logging.getLogger("jotguard.revocation")

RECONNECT_DELAY = 0.5
# Shorter than the store's socket timeout, so an idle subscription never times out.
LISTEN_SLICE = 0.25
# A check is one PRAGMA on the store's reading thread (a few microseconds).
SQLITE_CHECK_INTERVAL = 0.025


class ChangeNotifier(Protocol):
    async def listen(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` for every announced change, forever (reconnecting by itself)."""
        ...


class RedisChangeNotifier:
    def __init__(self, store: RedisRevocationStore) -> None:
        self.store = store

    async def listen(self, wake: Callable[[], None]) -> None:
        while True:
            try:
                await self._subscribed(wake)
            except (RedisError, OSError) as exc:
                log.debug("revocation notifications interrupted (%s); resubscribing", exc)
            await asyncio.sleep(RECONNECT_DELAY)

    async def _subscribed(self, wake: Callable[[], None]) -> None:
        pubsub = self.store.redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.store.changes_channel)
            wake()  # whatever was announced while we were not listening
            while True:
                message = await pubsub.get_message(timeout=LISTEN_SLICE)
                if message is not None and message.get("type") == "message":
                    wake()
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]


class SQLiteChangeNotifier:
    def __init__(
        self, store: SQLiteRevocationStore, *, interval: float = SQLITE_CHECK_INTERVAL
    ) -> None:
        self.store = store
        self.interval = interval
        self._seen: int | None = None
        self._lost = False

    async def check(self) -> bool:
        """One look at the file's data version: True when the mirror should read the feed."""
        try:
            version = await self.store.data_version()
        except BackendUnavailable:
            # The mirror's own polls report the outage; the next check after it wakes it.
            self._seen, self._lost = None, True
            return False
        # A connection reopened after an error counts afresh: compare only like with like.
        moved = (self._seen is not None and version != self._seen) or self._lost
        self._seen, self._lost = version, False
        return moved

    async def listen(self, wake: Callable[[], None]) -> None:
        while True:
            if await self.check():
                wake()
            await asyncio.sleep(self.interval)


def notifier_for(store: RevocationStore) -> ChangeNotifier | None:
    """The store's announcements (Redis pub/sub, SQLite's data version); None: polling alone."""
    if isinstance(store, RedisRevocationStore):
        return RedisChangeNotifier(store)
    if isinstance(store, SQLiteRevocationStore):
        return SQLiteChangeNotifier(store)
    return None
