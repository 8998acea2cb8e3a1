"""Parsers that turn a setting's text into its typed value, or say in one line what is wrong.

Each raises ``ValueError`` with a reason such as "must be a whole number from 0 to
65535"; the loader turns that into a ``SettingsError`` naming the variable or flag.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

from backends.keys import ALGORITHM_KEY_TYPES
from backends.ratelimit import parse_limits
from backends.storage.urls import check_store_url

Number = TypeVar("Number", int, float)


def _between(
    convert: Callable[[str], Number], low: Number, high: Number, wanted: str
) -> Callable[[str], Number]:
    """A parser of numbers from ``low`` to ``high``; ``wanted`` says what else is refused."""

    def parse(raw: str) -> Number:
        try:
            value = convert(raw.strip())
        except ValueError:
            raise ValueError(wanted) from None
        if not low <= value <= high:  # NaN too: it compares false
            raise ValueError(wanted)
        return value

    return parse


def int_between(low: int, high: int) -> Callable[[str], int]:
    return _between(int, low, high, f"must be a whole number from {low} to {high}")


def seconds_between(low: float, high: float) -> Callable[[str], float]:
    return _between(float, low, high, f"must be a number of seconds from {low:g} to {high:g}")


def one_of(choices: tuple[str, ...]) -> Callable[[str], str]:
    """A parser of one of the lower-case ``choices``, given in any case."""

    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return parse


def boolean(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("must be true or false")


def text(raw: str) -> str:
    return raw.strip()


def host(raw: str) -> str:
    host = raw.strip()
    if not host or any(c.isspace() for c in host) or "/" in host:
        raise ValueError("must be a host name or IP address")
    return host


def http_url(raw: str) -> str:
    """A URL this service is known by (its issuer, its public base URL): published in
    every token and proof, so it carries no credentials, query or fragment (RFC 8414 §2)."""
    value = raw.strip()
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError("must be an http(s) URL")
    if "@" in parts.netloc or "?" in value or "#" in value:
        raise ValueError("must be a URL without user information, query or fragment")
    return value


def algorithm(raw: str) -> str:
    value = raw.strip()
    allowed = ("RS256", "ES256", "EdDSA", "HS256")
    if value not in allowed:
        raise ValueError(f"must be one of {', '.join(allowed)}")
    assert value in ALGORITHM_KEY_TYPES
    return value


def log_level(raw: str) -> str:
    value = raw.strip().upper()
    if value not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
    return value


# -- operability (metrics, logs, readiness, CORS) ----------------------------------------


def metrics_exposure(raw: str) -> str:
    value = raw.strip().lower()
    if value in {"same", "off"}:
        return value
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise ValueError("must be same, off, or a port number for a separate 127.0.0.1 listener")
    return str(port)


def log_format(raw: str) -> str:
    value = raw.strip().lower()
    if value not in {"text", "json"}:
        raise ValueError("must be text or json")
    return value


def _origin(value: str) -> str:
    if value == "*":
        return value
    parts = urlsplit(value)
    if (
        parts.scheme.lower() not in {"http", "https"}
        or not parts.hostname
        or parts.username is not None
        or parts.path not in {"", "/"}
        or parts.query
        or parts.fragment
    ):
        raise ValueError(f"{value!r} is not an origin such as https://app.example.com[:port]")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{value!r} has a bad port") from None
    # Browsers send the serialised origin: lower-case, default port left out.
    default = {"http": 80, "https": 443}[parts.scheme.lower()]
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    suffix = f":{port}" if port is not None and port != default else ""
    return f"{parts.scheme.lower()}://{host}{suffix}"


def origins(raw: str) -> tuple[str, ...]:
    origins = tuple(dict.fromkeys(_origin(o) for o in raw.replace(",", " ").split()))
    if "*" in origins and len(origins) > 1:
        raise ValueError("* already allows every origin; list origins or give * alone")
    return origins


def store_url(raw: str) -> str:
    return check_store_url("revocation", raw)


def scope_name(raw: str) -> str:
    value = raw.strip()
    if not value or any(c.isspace() or c in '"\\' for c in value):
        raise ValueError("must be one scope name (no spaces or quotes)")
    return value


# Rate limiting (issue 6).
RATELIMIT_OFF = "off"


def rate_limits(raw: str) -> str:
    """Limits in the ``limits`` notation, or ``off``: that policy counts nothing."""
    value = raw.strip()
    if value.lower() == RATELIMIT_OFF:
        return RATELIMIT_OFF
    try:
        parse_limits(value)
    except ValueError as exc:
        raise ValueError(f"{exc}, or off") from None
    return value


CLIENT_IP_HEADERS = ("x-forwarded-for", "x-real-ip", "forwarded")
client_ip_header = one_of(CLIENT_IP_HEADERS)


def key_prefix(raw: str) -> str:
    value = raw.strip()
    if not value or any(c.isspace() for c in value):
        raise ValueError("must be a non-empty prefix without spaces")
    return value


def issuance_store_url(raw: str) -> str:
    return check_store_url("issuance", raw)
