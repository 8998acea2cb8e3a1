"""Build the CatchphraseStore a URL names (the forms ``JOTGUARD_ISSUANCE_STORE`` takes)."""

from __future__ import annotations

from urllib.parse import urlsplit

from backends.catchphrases.base import CatchphraseStore
from backends.errors import ConfigError
from backends.storage.urls import MONGODB_SCHEMES, redact, sqlite_path


def open_catchphrase_store(url: str) -> CatchphraseStore:
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        from backends.catchphrases.memory import MemoryCatchphraseStore

        return MemoryCatchphraseStore()
    if scheme == "sqlite":
        from backends.catchphrases.sqlite import SQLiteCatchphraseStore

        return SQLiteCatchphraseStore(sqlite_path(url))
    if scheme in MONGODB_SCHEMES:
        from backends.catchphrases.mongo import MongoCatchphraseStore
        from backends.storage.mongodb import mongo_database

        client, database = mongo_database(url)
        return MongoCatchphraseStore(database, client=client)
    raise ConfigError(f"unsupported catchphrase store URL: {redact(url)}")
