"""Revoked entries present during a run: one set per run, written into jotguard's stores
through the store's own API (as an operator's revocations would be) before the server
starts, and into a file the peers' denylists load."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from backends.errors import ConfigError
from backends.revocation.factory import open_store

if TYPE_CHECKING:
    from bench.targets import Context
    from bench.variants import Variant

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


@dataclass(frozen=True)
class RevokedSet:
    """The revocations present during a run, the same for every target that checks any:
    jotguard's stores are seeded with them, and the peers' denylists load them from
    :meth:`write`'s file, so every target checks the very same entries."""

    issuer: str
    jtis: tuple[str, ...]
    subjects: dict[str, float]  # subject -> cutoff: tokens issued at or before it are revoked
    clients: dict[str, float]
    expires_at: float

    def __len__(self) -> int:
        return len(self.jtis) + len(self.subjects) + len(self.clients)

    def write(self, path: Path) -> Path:
        fields = ("issuer", "jtis", "subjects", "clients")
        path.write_text(json.dumps({name: getattr(self, name) for name in fields}))
        return path


def revoked_set(count: int, issuer: str, *, including: str) -> RevokedSet:
    """``count`` entries for ``issuer``: jtis (``including`` among them, the jti of the token
    that proves each target checks them), and one in :data:`CUTOFF_EVERY` a subject or
    client cutoff. None of them covers the benchmark's token."""
    now = time.time()
    jtis, subjects, clients = [including], {}, {}
    for n in range(1, count):
        if n % CUTOFF_EVERY == 1:
            subjects[f"seeded-user-{n}"] = now
        elif n % CUTOFF_EVERY == 2:
            clients[f"seeded-client-{n}"] = now
        else:
            jtis.append(secrets.token_urlsafe(16))
    return RevokedSet(issuer, tuple(jtis), subjects, clients, now + 6 * 3600)


async def _seed(url: str, entries: RevokedSet | None) -> None:
    store = open_store(url)
    try:
        await store.ping()  # creates the schema, also when there is nothing to write
        if entries is None:
            return
        semaphore = asyncio.Semaphore(SEED_CONCURRENCY.get(url.split(":", 1)[0], 1))

        async def limited(write: Awaitable[object]) -> None:
            async with semaphore:
                await write

        writes: list[Awaitable[object]] = [
            store.revoke_token(jti, issuer=entries.issuer, expires_at=entries.expires_at)
            for jti in entries.jtis
        ]
        writes += [store.revoke_subject(s, before=t) for s, t in entries.subjects.items()]
        writes += [store.revoke_client(c, before=t) for c, t in entries.clients.items()]
        await asyncio.gather(*(limited(write) for write in writes))
    finally:
        await store.close()


def seed_store(url: str, entries: RevokedSet | None) -> float:
    """Write ``entries`` into the store at ``url``; the seconds it took."""
    started = time.perf_counter()
    asyncio.run(_seed(url, entries))
    return time.perf_counter() - started
