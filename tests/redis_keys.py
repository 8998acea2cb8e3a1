"""The shared Redis on 127.0.0.1 for tests: whether it answers, and key prefixes of a
test's own, deleted afterwards (never FLUSHDB: other suites use the same server)."""

from __future__ import annotations

import contextlib
import socket
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from redis.asyncio import Redis

from tests.conftest import redis_url, require_service


def reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 1):
            return True
    except OSError:
        return False


async def delete_prefix(client: Redis, prefix: str) -> None:
    async for key in client.scan_iter(match=prefix + "*", count=500):
        await client.delete(key)


@contextlib.asynccontextmanager
async def own_prefix(suffix: str = "") -> AsyncIterator[str]:
    """A fresh ``jotguard-test:<hex>:<suffix>`` prefix; skips the test when Redis is down."""
    url = redis_url()
    require_service("Redis", reachable(url))
    prefix = f"jotguard-test:{uuid.uuid4().hex}:{suffix}"
    yield prefix
    client = Redis.from_url(url)
    await delete_prefix(client, prefix)
    await client.aclose()
