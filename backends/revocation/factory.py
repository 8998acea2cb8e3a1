"""One URL picks the store: ``sqlite:///path``, ``redis://...``, ``mongodb://...``, ``memory://``."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from backends.errors import ConfigError
from backends.revocation.base import RevocationStore

SQLITE_PREFIX = "sqlite:///"


def sqlite_path(url: str) -> Path:
    """``sqlite:///relative/file`` or ``sqlite:////absolute/file`` (SQLAlchemy's form)."""
    path = url[len(SQLITE_PREFIX) :]
    if not url.startswith(SQLITE_PREFIX) or not path:
        raise ConfigError(f"not an SQLite URL: {redact(url)}")
    return Path(path)


def redact(url: str) -> str:
    """``url`` without its password, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


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
    if scheme in {"redis", "rediss"}:
        from backends.revocation.redis import RedisRevocationStore

        return RedisRevocationStore.from_url(url, **options)
    if scheme in {"mongodb", "mongodb+srv"}:
        from backends.revocation.mongo import MongoRevocationStore

        return MongoRevocationStore.from_url(url, **options)
    raise ConfigError(f"unsupported revocation store URL: {redact(url)}")
