"""Build the IssuanceStore a URL names: ``sqlite:///...``, ``mongodb://...`` or ``memory://``.

The same URL forms as ``JOTGUARD_REVOCATION_STORE`` (SQLAlchemy's ``sqlite:///relative``
and ``sqlite:////absolute``), minus Redis, which is no place for a user registry.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from backends.errors import ConfigError
from backends.issuance.base import IssuanceStore
from backends.storage.urls import MONGODB_SCHEMES, redact, sqlite_path


def open_issuance_store(url: str) -> IssuanceStore:
    """The store for ``url``; connects lazily, so it opens even while the store is down."""
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        from backends.issuance.memory import MemoryIssuanceStore

        return MemoryIssuanceStore()
    if scheme == "sqlite":
        from backends.issuance.sqlite import SQLiteIssuanceStore

        return SQLiteIssuanceStore(sqlite_path(url))
    if scheme in MONGODB_SCHEMES:
        from backends.issuance.mongo import MongoIssuanceStore
        from backends.storage.mongodb import mongo_database

        client, database = mongo_database(url)
        return MongoIssuanceStore(database, client=client)
    raise ConfigError(f"unsupported issuance store URL: {redact(url)}")
