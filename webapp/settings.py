"""One settings object from CLI flags, the process environment and a ``.env`` file.

Precedence, highest first: CLI flag, process environment, ``.env`` file, default.
Every setting is declared once below (its variable, default, parser and help);
the CLI flags and the README's configuration table follow from that declaration.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dotenv import dotenv_values

from backends.keys import ALGORITHM_KEY_TYPES
from backends.ratelimit import check_storage_uri, parse_limits
from webapp.clientip import Network, parse_networks


class SettingsError(Exception):
    """A bad value; ``str()`` is the one line start-up prints before exiting 2."""

    def __init__(self, name: str, problem: str, value: str) -> None:
        super().__init__(f"{name}: {problem} (got {value!r})")
        self.name = name


def _int_between(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(f"must be a whole number from {low} to {high}") from None
        if not low <= value <= high:
            raise ValueError(f"must be a whole number from {low} to {high}")
        return value

    return parse


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("must be true or false")


def _text(raw: str) -> str:
    return raw.strip()


def _host(raw: str) -> str:
    host = raw.strip()
    if not host or any(c.isspace() for c in host) or "/" in host:
        raise ValueError("must be a host name or IP address")
    return host


def _url(raw: str) -> str:
    value = raw.strip()
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError("must be an http(s) URL")
    return value


def _algorithm(raw: str) -> str:
    value = raw.strip()
    allowed = ("RS256", "ES256", "EdDSA", "HS256")
    if value not in allowed:
        raise ValueError(f"must be one of {', '.join(allowed)}")
    assert value in ALGORITHM_KEY_TYPES
    return value


def _log_level(raw: str) -> str:
    value = raw.strip().upper()
    if value not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
    return value


# Rate limiting (issue 6).
def _limits(raw: str) -> str:
    parse_limits(raw)
    return raw.strip()


def _seconds_between(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError(f"must be a number of seconds from {low} to {high}") from None
        if not low <= value <= high:
            raise ValueError(f"must be a number of seconds from {low} to {high}")
        return value

    return parse


def _key_prefix(raw: str) -> str:
    value = raw.strip()
    if not value or any(c.isspace() for c in value):
        raise ValueError("must be a non-empty prefix without spaces")
    return value


def setting(
    env: str, default: Any, parse: Callable[[str], Any], help: str, *, flag: bool = True
) -> Any:
    """Declare a setting: its variable name, default, parser and one line of help."""
    return field(default=default, metadata={"env": env, "parse": parse, "help": help, "flag": flag})


@dataclass(frozen=True)
class Settings:
    host: str = setting("JOTGUARD_HOST", "127.0.0.1", _host, "Address to listen on.")
    port: int = setting("JOTGUARD_PORT", 8888, _int_between(0, 65535), "Port to listen on.")
    data_dir: Path = setting(
        "JOTGUARD_DATA_DIR", Path("var"), lambda s: Path(s.strip()), "Keys and SQLite files."
    )
    issuer: str = setting(
        "JOTGUARD_ISSUER",
        "",
        _url,
        "Issuer URL of the local issuer; default http://{host}:{port}/.",
    )
    audience: str = setting(
        "JOTGUARD_AUDIENCE", "jotguard", _text, "Audience local tokens are issued for and checked."
    )
    access_token_ttl: int = setting(
        "JOTGUARD_ACCESS_TOKEN_TTL", 900, _int_between(1, 86400), "Access-token lifetime, seconds."
    )
    max_token_ttl: int = setting(
        "JOTGUARD_MAX_TOKEN_TTL",
        86400,
        _int_between(60, 30 * 86400),
        "Longest lifetime any access token may get; retired keys live this long.",
    )
    leeway: int = setting(
        "JOTGUARD_LEEWAY", 30, _int_between(0, 300), "Clock leeway for exp/nbf/iat, seconds."
    )
    signing_alg: str = setting(
        "JOTGUARD_SIGNING_ALG", "RS256", _algorithm, "RS256, ES256, EdDSA or HS256."
    )
    log_level: str = setting("JOTGUARD_LOG_LEVEL", "INFO", _log_level, "Logging level.")
    env_file: Path = setting(
        "JOTGUARD_ENV_FILE", Path(".env"), lambda s: Path(s.strip()), "The .env file to read."
    )

    # Rate limiting (issue 6): limits in the `limits` notation, e.g. 10/minute;100/hour.
    ratelimit_storage: str = setting(
        "JOTGUARD_RATELIMIT_STORAGE",
        "memory://",
        check_storage_uri,
        "Rate-limit counters: memory:// (this process) or redis://host:port/db (all instances).",
    )
    ratelimit_key_prefix: str = setting(
        "JOTGUARD_RATELIMIT_KEY_PREFIX",
        "jotguard:ratelimit",
        _key_prefix,
        "Prefix of the rate-limit keys in Redis.",
    )
    ratelimit_timeout: float = setting(
        "JOTGUARD_RATELIMIT_TIMEOUT",
        0.5,
        _seconds_between(0.01, 10),
        "Redis connect and read timeout for rate limiting, seconds.",
    )
    ratelimit_fail_closed: bool = setting(
        "JOTGUARD_RATELIMIT_FAIL_CLOSED",
        False,
        _bool,
        "Answer 503 instead of serving while the rate-limit storage is unreachable.",
    )
    ratelimit_default: str = setting(
        "JOTGUARD_RATELIMIT_DEFAULT",
        "600/minute",
        _limits,
        "Every limited route without its own limit: per user, or per IP when anonymous.",
    )
    ratelimit_token: str = setting(
        "JOTGUARD_RATELIMIT_TOKEN",
        "10/minute;100/hour",
        _limits,
        "Token endpoints (/oauth/token, /get-token): per client_id and IP, moving window.",
    )
    ratelimit_admin: str = setting(
        "JOTGUARD_RATELIMIT_ADMIN", "60/minute", _limits, "The admin API (/admin/*), per user."
    )
    ratelimit_api: str = setting(
        "JOTGUARD_RATELIMIT_API", "300/minute", _limits, "The demo API (/api/*), per user."
    )
    ratelimit_preauth: str = setting(
        "JOTGUARD_RATELIMIT_PREAUTH",
        "3000/minute",
        _limits,
        "Per IP: requests with credentials to check, counted before any check.",
    )
    ratelimit_failed_auth: str = setting(
        "JOTGUARD_RATELIMIT_FAILED_AUTH",
        "10/minute;100/hour",
        _limits,
        "Per IP: failed authentications; once spent, the IP gets 429 before any check.",
    )
    trusted_proxies: tuple[Network, ...] = setting(
        "JOTGUARD_TRUSTED_PROXIES",
        (),
        parse_networks,
        "Proxies (IPs or CIDRs, comma-separated) whose X-Forwarded-For/X-Real-IP are believed.",
    )
    ratelimit_ipv6_prefix: int = setting(
        "JOTGUARD_RATELIMIT_IPV6_PREFIX",
        64,
        _int_between(32, 128),
        "IPv6 clients are counted per network of this prefix length.",
    )

    @property
    def issuer_url(self) -> str:
        if self.issuer:
            return self.issuer
        host = self.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}/"

    @property
    def keyring_path(self) -> Path:
        return self.data_dir / "keyring.json"

    @property
    def key_retention(self) -> int:
        return self.max_token_ttl + self.leeway

    @classmethod
    def load(
        cls,
        flags: Mapping[str, str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        """Build settings; ``flags`` maps field names to raw CLI values.

        :raises SettingsError: naming the variable (or flag) and what is wrong.
        """
        flags = dict(flags or {})
        environ = dict(os.environ if environ is None else environ)
        env_file = Path(flags.get("env_file") or environ.get("JOTGUARD_ENV_FILE") or ".env")
        from_file = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            env = f.metadata["env"]
            if f.name in flags:
                raw, name = flags[f.name], "--" + f.name.replace("_", "-")
            elif env in environ:
                raw, name = environ[env], env
            elif env in from_file:
                raw, name = from_file[env], f"{env} (from {env_file})"
            else:
                continue
            try:
                values[f.name] = f.metadata["parse"](raw)
            except ValueError as exc:
                raise SettingsError(name, str(exc), raw) from None
        return cls(**values)


def documented_settings() -> list[tuple[str, str, str, str]]:
    """(variable, flag, default, help) for every setting: the README table's source."""
    rows = []
    for f in dataclasses.fields(Settings):
        flag = "--" + f.name.replace("_", "-") if f.metadata["flag"] else ""
        rows.append((f.metadata["env"], flag, str(f.default), f.metadata["help"]))
    return rows
