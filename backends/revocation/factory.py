"""One URL picks the store: ``sqlite:///path``, ``redis://...``, ``mongodb://...``, ``memory://``."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from backends.errors import ConfigError
from backends.revocation.base import RevocationStore
from backends.storage.urls import MONGODB_SCHEMES, REDIS_SCHEMES, redact, sqlite_path


def open_store(url: str, **options: Any) -> RevocationStore:
    """The store for ``url``; connects lazily, so it opens even while the store is down.

    ``options`` are the :class:`~backends.revocation.core.StoreBase` lifetimes.
    """
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        from backends.revocation.memory import MemoryRevocationStore

        return MemoryRevocationStore(**options)
    if scheme == "sqlite":
        from backends.revocation.sqlite import SQLiteRevocationStore

        return SQLiteRevocationStore(sqlite_path(url), **options)
    if scheme in REDIS_SCHEMES:
        from backends.revocation.redis import RedisRevocationStore

        return RedisRevocationStore.from_url(url, **options)
    if scheme in MONGODB_SCHEMES:
        from backends.revocation.mongo import MongoRevocationStore

        return MongoRevocationStore.from_url(url, **options)
    raise ConfigError(f"unsupported revocation store URL: {redact(url)}")
