"""Change announcements that wake a mirror at once instead of at its next poll.

The Redis store publishes every committed change number on its channel (inside the
write's transaction). A notifier only wakes the mirror, which then reads the change
feed as usual: an announcement carries no data to trust, and a lost one (reconnect,
outage) costs at most one poll interval, never correctness.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from redis.exceptions import RedisError

from backends.revocation.base import RevocationStore
from backends.revocation.redis import RedisRevocationStore

log = logging.getLogger("jotguard.revocation")

RECONNECT_DELAY = 0.5
# Shorter than the store's socket timeout, so an idle subscription never times out.
LISTEN_SLICE = 0.25


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


def notifier_for(store: RevocationStore) -> ChangeNotifier | None:
    """The store's announcements, if it makes any (Redis); None: polling alone."""
    if isinstance(store, RedisRevocationStore):
        return RedisChangeNotifier(store)
    return None
