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


REVOCATION_STORE_SCHEMES = ("sqlite", "redis", "rediss", "mongodb", "mongodb+srv", "memory")


def _store_url(raw: str) -> str:
    value = raw.strip()
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in REVOCATION_STORE_SCHEMES:
        raise ValueError(
            "must be sqlite:///path, redis://host[:port]/db, mongodb://host/db or memory://"
        )
    if parts.scheme == "sqlite" and (
        not value.startswith("sqlite:///") or value.rstrip("/") == "sqlite:"
    ):
        raise ValueError("a SQLite URL is sqlite:///relative/path or sqlite:////absolute/path")
    if parts.scheme not in {"sqlite", "memory"} and not parts.netloc:
        raise ValueError(f"a {parts.scheme} URL needs a host")
    return value


def _scope_name(raw: str) -> str:
    value = raw.strip()
    if not value or any(c.isspace() or c in '"\\' for c in value):
        raise ValueError("must be one scope name (no spaces or quotes)")
    return value


def _issuance_store_url(raw: str) -> str:
    value = _store_url(raw)
    if urlsplit(value).scheme in {"redis", "rediss"}:
        raise ValueError("must be sqlite:///path, mongodb://host/db or memory:// (not Redis)")
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
    # -- revocation ---------------------------------------------------------------------
    revocation_store: str = setting(
        "JOTGUARD_REVOCATION_STORE",
        "",
        _store_url,
        "Revocation store URL: sqlite:///path, redis://..., mongodb://..., memory://;"
        " default an SQLite file in the data directory.",
    )
    revocation_fail_open: bool = setting(
        "JOTGUARD_REVOCATION_FAIL_OPEN",
        False,
        _bool,
        "Let tokens through (logging each) when the revocation store is down, instead of 503.",
    )
    admin_scope: str = setting(
        "JOTGUARD_ADMIN_SCOPE", "admin", _scope_name, "Scope the admin API requires."
    )
    # -- token issuance -----------------------------------------------------------------
    issuance_store: str = setting(
        "JOTGUARD_ISSUANCE_STORE",
        "",
        _issuance_store_url,
        "Clients, users, refresh tokens and the demo catchphrases: sqlite:///path,"
        " mongodb://..., memory://; default SQLite files in the data directory.",
    )
    refresh_token_ttl: int = setting(
        "JOTGUARD_REFRESH_TOKEN_TTL",
        14 * 86400,
        _int_between(60, 365 * 86400),
        "Refresh-token lifetime, seconds; each refresh hands out a new one for as long.",
    )
    argon2_time_cost: int = setting(
        "JOTGUARD_ARGON2_TIME_COST", 3, _int_between(1, 20), "argon2id passes per hash."
    )
    argon2_memory_kib: int = setting(
        "JOTGUARD_ARGON2_MEMORY_KIB",
        65536,
        _int_between(64, 4 * 1024 * 1024),
        "argon2id memory per hash, KiB (each hashing thread uses this much).",
    )
    password_hash_workers: int = setting(
        "JOTGUARD_PASSWORD_HASH_WORKERS",
        0,
        _int_between(0, 64),
        "Threads that hash passwords and client secrets; 0: one less than the CPUs, at least 1.",
    )
    get_token_client_id: str = setting(
        "JOTGUARD_GET_TOKEN_CLIENT_ID",
        "",
        _text,
        "Turns on GET /get-token (local mode) for this client; not for production.",
    )
    get_token_client_secret: str = setting(
        "JOTGUARD_GET_TOKEN_CLIENT_SECRET",
        "",
        _text,
        "The /get-token client's secret (environment or .env only, never a flag).",
        flag=False,
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

    @property
    def revocation_store_url(self) -> str:
        if self.revocation_store:
            return self.revocation_store
        return "sqlite:///" + str(self.data_dir / "revocations.sqlite3")

    def issuance_store_url(self, database: str = "issuance") -> str:
        """The store for ``database`` (``issuance`` or ``catchphrases``)."""
        if self.issuance_store:
            return self.issuance_store
        return "sqlite:///" + str(self.data_dir / f"{database}.sqlite3")

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
