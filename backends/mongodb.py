"""MongoDB access shared by the stores: one client per URL, driver errors as outages.

The stores take a database object, not a URL: pymongo's ``AsyncDatabase`` or a
Motor database (the same awaitable API), so tests can hand in mongomock-motor.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.errors import ConfigurationError, DuplicateKeyError, PyMongoError

from backends.errors import BackendUnavailable, ConfigError

SERVER_SELECTION_TIMEOUT_MS = 5000
DEFAULT_DATABASE = "jotguard"


def mongo_database(url: str) -> tuple[AsyncMongoClient[dict[str, Any]], Any]:
    """A client for ``url`` and its database (the URL's path, default ``jotguard``).

    Connecting is lazy: a server that is down now surfaces as ``BackendUnavailable``
    on first use, so the service still starts and recovers by itself.
    """
    options: dict[str, Any] = {"tz_aware": True}
    if "serverselectiontimeoutms" not in url.lower():  # the URL's own setting wins
        options["serverSelectionTimeoutMS"] = SERVER_SELECTION_TIMEOUT_MS
    try:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, **options)
        return client, client.get_default_database(default=DEFAULT_DATABASE)
    except (ConfigurationError, ValueError, TypeError) as exc:
        raise ConfigError(f"bad MongoDB URL: {exc}") from None


@contextlib.contextmanager
def mongo_errors(what: str) -> Iterator[None]:
    """Driver failures (other than a duplicate key) become ``BackendUnavailable``."""
    try:
        yield
    except DuplicateKeyError:
        raise
    except PyMongoError as exc:
        raise BackendUnavailable(f"The MongoDB {what} store cannot answer") from exc
