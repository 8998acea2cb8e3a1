"""Every revocation store, built for tests: the contract suite and the fault tests use these.

The Mongo store runs against mongomock-motor (an in-process mock of Motor's API), and
against a wire-protocol server at MONGODB_URI (marker ``mongodb``): skipped when it is
unset, except in CI (``JOTGUARD_REQUIRE_SERVICES=1``), where it is required.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from backends.revocation.base import RevocationStore
from backends.revocation.memory import MemoryRevocationStore
from backends.revocation.mongo import MongoRevocationStore
from backends.revocation.redis import RedisRevocationStore
from backends.revocation.sqlite import SQLiteRevocationStore
from tests.clock import FakeClock as Clock
from tests.conftest import redis_url, require_service
from tests.mongo_wire import mongo_uri
from tests.redis_keys import delete_prefix, reachable

LEEWAY = 30
MAX_TTL = 3600
# Verifiers accept a token until exp + leeway; entries keep one more second of margin.
JTI_GRACE = LEEWAY + 1
# A cutoff covers tokens stamped up to LEEWAY after it (a fast issuer clock); the longest
# accepted lifetime is MAX_TTL + LEEWAY; then the same grace.
SUB_COVER = LEEWAY + MAX_TTL + LEEWAY + JTI_GRACE
STORE_KINDS = [
    "memory",
    "sqlite",
    pytest.param("redis", marks=pytest.mark.redis),
    "mongo-mock",
    pytest.param("mongo-real", marks=pytest.mark.mongodb),
]


@contextlib.asynccontextmanager
async def open_test_store(
    kind: str, tmp_path: Path, clock: Clock, **options: Any
) -> AsyncIterator[RevocationStore]:
    lifetimes: dict[str, Any] = {"leeway": LEEWAY, "max_token_ttl": MAX_TTL, "clock": clock}
    lifetimes.update(options)
    if kind == "memory":
        yield MemoryRevocationStore(**lifetimes)
    elif kind == "sqlite":
        store = SQLiteRevocationStore(tmp_path / "revocations.sqlite3", **lifetimes)
        yield store
        await store.close()
    elif kind == "redis":
        url = redis_url()
        require_service("Redis", reachable(url))
        prefix = f"jotguard-test:{uuid.uuid4().hex}:"
        redis_store = RedisRevocationStore(Redis.from_url(url), prefix=prefix, **lifetimes)
        try:
            yield redis_store
        finally:
            await delete_prefix(redis_store.redis, prefix)
            await redis_store.close()
    elif kind == "mongo-mock":
        from mongomock_motor import AsyncMongoMockClient

        client = AsyncMongoMockClient()
        yield MongoRevocationStore(client, database="jotguard_test", settle=0.05, **lifetimes)
    elif kind == "mongo-real":
        uri = mongo_uri()
        database = f"jotguard_test_{uuid.uuid4().hex[:12]}"
        mongo_store = MongoRevocationStore.from_url(uri, **lifetimes)
        mongo_store = MongoRevocationStore(
            mongo_store.client, database=database, settle=0.2, **lifetimes
        )
        try:
            await asyncio.wait_for(mongo_store.ping(), 10)
            yield mongo_store
        finally:
            with contextlib.suppress(Exception):
                await mongo_store.client.drop_database(database)
            await mongo_store.close()
    else:
        raise AssertionError(kind)
