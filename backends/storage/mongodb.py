"""MongoDB access shared by the stores: one client factory, driver errors as outages.

Every store's client comes from :func:`mongo_client`, so the revocation, issuance and
catchphrase stores time out alike. pymongo's own defaults would let a server that stops
answering hold a request for good (no socket timeout) or for about 30 s (server
selection, connect): here a store that cannot answer gives 503 within a few seconds.

The stores take a database object, not a URL: pymongo's ``AsyncDatabase`` or a
Motor database (the same awaitable API), so tests can hand in mongomock-motor.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pymongo import AsyncMongoClient
from pymongo.errors import ConfigurationError, DuplicateKeyError, PyMongoError

from backends.errors import BackendUnavailable, ConfigError

DEFAULT_DATABASE = "jotguard"
# The URL's own settings win (``?socketTimeoutMS=...``). A read that times out is
# retried once by the driver (retryable reads), so a hung server answers 503 after
# about twice the socket timeout; a write is not retried on a standalone server.
TIMEOUTS_MS = {
    "serverSelectionTimeoutMS": 1000,
    "connectTimeoutMS": 1000,
    "socketTimeoutMS": 2000,
}


def mongo_client(url: str, **options: Any) -> tuple[AsyncMongoClient[dict[str, Any]], str]:
    """A client for ``url`` and the database it names (its path, default ``jotguard``).

    Connecting is lazy: a server that is down now surfaces as ``BackendUnavailable``
    on first use, so the service still starts and recovers by itself. ``options`` go
    to ``AsyncMongoClient`` (tests point ``directConnection`` at a proxy).
    """
    try:
        parts = urlsplit(url)
        given = {name.lower() for name, _ in parse_qsl(parts.query)}
        settings: dict[str, Any] = {"tz_aware": True}
        settings.update({k: v for k, v in TIMEOUTS_MS.items() if k.lower() not in given})
        settings.update(options)
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, **settings)
        return client, client.get_default_database(default=DEFAULT_DATABASE).name
    except (ConfigurationError, ValueError, TypeError) as exc:
        raise ConfigError(f"bad MongoDB URL: {exc}") from None


def mongo_database(url: str) -> tuple[AsyncMongoClient[dict[str, Any]], Any]:
    """A client for ``url`` and its database object."""
    client, name = mongo_client(url)
    return client, client[name]


@contextlib.contextmanager
def mongo_errors(what: str) -> Iterator[None]:
    """Driver failures (other than a duplicate key) become ``BackendUnavailable``."""
    try:
        yield
    except DuplicateKeyError:
        raise
    except PyMongoError as exc:
        raise BackendUnavailable(
            f"The MongoDB {what} store cannot answer ({type(exc).__name__})"
        ) from exc


class Indexes:
    """A store's indexes, created on first use rather than at start (so the service starts
    while MongoDB is down), once however many requests arrive together; tried again
    after a failure, and after :meth:`forget` (a dropped database takes them along)."""

    def __init__(self, create: Callable[[], Awaitable[None]]) -> None:
        self._create = create
        self._made = False
        self._lock = asyncio.Lock()

    async def ensure(self) -> None:
        if self._made:
            return
        async with self._lock:
            if self._made:
                return
            await self._create()
            self._made = True

    def forget(self) -> None:
        self._made = False
