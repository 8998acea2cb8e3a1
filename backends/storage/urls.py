"""Store URLs: which schemes each kind of store takes, in one table, and their helpers.

Settings check a URL with :func:`check_store_url` against the same table the store
factories (and :func:`~backends.ratelimit.open_rate_limit`) dispatch on, so a URL that
passes the settings is one a factory opens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from backends.errors import ConfigError

StoreKind = Literal["revocation", "issuance", "ratelimit"]

SQLITE_PREFIX = "sqlite:///"
REDIS_SCHEMES = ("redis", "rediss")
MONGODB_SCHEMES = ("mongodb", "mongodb+srv")
STORE_SCHEMES: dict[StoreKind, tuple[str, ...]] = {
    "revocation": ("sqlite", *REDIS_SCHEMES, *MONGODB_SCHEMES, "memory"),
    # Redis is no place for a user registry.
    "issuance": ("sqlite", *MONGODB_SCHEMES, "memory"),
    # Rate-limit counters: this process's memory, or a Redis every instance shares.
    "ratelimit": ("memory", *REDIS_SCHEMES),
}
_FORMS = "must be sqlite:///path, redis://host[:port]/db, mongodb://host/db or memory://"
_NOT_REDIS = "must be sqlite:///path, mongodb://host/db or memory:// (not Redis)"
_RATELIMIT_FORMS = "must be memory:// or a redis://host:port/db URL"


def check_store_url(kind: StoreKind, raw: str) -> str:
    """``raw`` stripped, if it names a store of ``kind``; empty stays empty (the default),
    except for rate limits, whose default is ``memory://`` itself.

    :raises ValueError: with a sentence for the settings error.
    """
    value = raw.strip()
    if kind == "ratelimit":
        return _check_ratelimit_url(value)
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in STORE_SCHEMES[kind]:
        raise ValueError(_NOT_REDIS if parts.scheme in REDIS_SCHEMES else _FORMS)
    if parts.scheme == "sqlite" and (
        not value.startswith(SQLITE_PREFIX) or value.rstrip("/") == "sqlite:"
    ):
        raise ValueError("a SQLite URL is sqlite:///relative/path or sqlite:////absolute/path")
    if parts.scheme not in {"sqlite", "memory"} and not parts.netloc:
        raise ValueError(f"a {parts.scheme} URL needs a host")
    return value


def _check_ratelimit_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme in STORE_SCHEMES["ratelimit"] and (
        value == "memory://" if parts.scheme == "memory" else parts.hostname
    ):
        return value
    raise ValueError(_RATELIMIT_FORMS)


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
