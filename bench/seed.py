"""Revoked entries present during a run: written through the store's own API, as an
operator's revocations would be, before the server starts."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from typing import TYPE_CHECKING

from backends.errors import ConfigError
from backends.revocation.factory import open_store

if TYPE_CHECKING:
    from bench.targets import Context, Variant

# One write in this many is a subject or client cutoff rather than one token's jti, so the
# per-request check meets every kind of entry (none of them covers the benchmark token).
CUTOFF_EVERY = 100
# Redis writes are optimistic transactions on one change counter: concurrent writers only
# retry (and one in a few hundred ran out of retries at 4 writers), so one at a time.
SEED_CONCURRENCY = {"sqlite": 64, "redis": 1}


def store_url(variant: Variant, ctx: Context) -> str:
    from bench.targets import Unavailable

    if variant.store == "sqlite":
        return f"sqlite:///{ctx.run / (variant.name + '.sqlite3')}"
    if variant.store == "redis":
        # A prefix of its own: other users of this Redis are never touched.
        separator = "&" if "?" in ctx.redis_url else "?"
        prefix = f"jotguard-bench:{uuid.uuid4().hex}:"
        ctx.redis_prefixes.append(prefix)
        url = f"{ctx.redis_url}{separator}prefix={prefix}"
        try:
            open_store(url)
        except ConfigError as exc:
            raise Unavailable(f"this build has no Redis store ({exc})") from None
        return url
    raise ValueError(f"unknown store {variant.store!r}")


async def _seed(url: str, issuer: str, count: int) -> None:
    store = open_store(url)
    try:
        await store.ping()
        expires = time.time() + 6 * 3600
        semaphore = asyncio.Semaphore(SEED_CONCURRENCY.get(url.split(":", 1)[0], 1))

        async def revoke(n: int) -> None:
            async with semaphore:
                value = secrets.token_urlsafe(16)
                if n % CUTOFF_EVERY == 1:
                    await store.revoke_subject(f"seeded-user-{n}", before=time.time())
                elif n % CUTOFF_EVERY == 2:
                    await store.revoke_client(f"seeded-client-{n}", before=time.time())
                else:
                    await store.revoke_token(value, issuer=issuer, expires_at=expires)

        await asyncio.gather(*(revoke(n) for n in range(count)))
    finally:
        await store.close()


def seed_store(url: str, issuer: str, count: int) -> float:
    """Write ``count`` revocations; the seconds it took."""
    started = time.perf_counter()
    asyncio.run(_seed(url, issuer, count))
    return time.perf_counter() - started
