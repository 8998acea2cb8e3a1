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

from backends.jwks import JWKSPolicy
from backends.keys import ALGORITHM_KEY_TYPES
from backends.ratelimit import check_storage_uri, parse_limits
from backends.remote import RemoteIssuer
from backends.token_exchange import ClientCredentials
from webapp import remote_settings
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


# -- operability (metrics, logs, readiness, CORS) ----------------------------------------


def _metrics_exposure(raw: str) -> str:
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


def _log_format(raw: str) -> str:
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


def _origins(raw: str) -> tuple[str, ...]:
    origins = tuple(dict.fromkeys(_origin(o) for o in raw.replace(",", " ").split()))
    if "*" in origins and len(origins) > 1:
        raise ValueError("* already allows every origin; list origins or give * alone")
    return origins


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


# Rate limiting (issue 6).
RATELIMIT_OFF = "off"


def _limits(raw: str) -> str:
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


def _client_ip_header(raw: str) -> str:
    value = raw.strip().lower()
    if value not in CLIENT_IP_HEADERS:
        raise ValueError(f"must be one of {', '.join(CLIENT_IP_HEADERS)}")
    return value


def _key_prefix(raw: str) -> str:
    value = raw.strip()
    if not value or any(c.isspace() for c in value):
        raise ValueError("must be a non-empty prefix without spaces")
    return value


def _issuance_store_url(raw: str) -> str:
    value = _store_url(raw)
    if urlsplit(value).scheme in {"redis", "rediss"}:
        raise ValueError("must be sqlite:///path, mongodb://host/db or memory:// (not Redis)")
    return value


def setting(
    env: str,
    default: Any,
    parse: Callable[[str], Any],
    help: str,
    *,
    flag: bool = True,
    secret: bool = False,
) -> Any:
    """Declare a setting: its variable name, default, parser and one line of help.

    ``secret=True`` keeps the value out of ``repr()`` (and so out of logs).
    """
    return field(
        default=default,
        repr=not secret,
        metadata={"env": env, "parse": parse, "help": help, "flag": flag},
    )


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
    key_publish_ahead: int = setting(
        "JOTGUARD_KEY_PUBLISH_AHEAD",
        600,
        _int_between(0, 7 * 86400),
        "Seconds `keys rotate` publishes a new key in the JWKS before signing with it"
        " (longer than verifiers cache the JWKS).",
    )
    log_level: str = setting("JOTGUARD_LOG_LEVEL", "INFO", _log_level, "Logging level.")
    env_file: Path = setting(
        "JOTGUARD_ENV_FILE", Path(".env"), lambda s: Path(s.strip()), "The .env file to read."
    )
    # -- operability
    metrics: str = setting(
        "JOTGUARD_METRICS",
        "same",
        _metrics_exposure,
        "/metrics: same (the service port), off, or a port of its own on 127.0.0.1.",
    )
    log_format: str = setting(
        "JOTGUARD_LOG_FORMAT", "text", _log_format, "Log lines as text or JSON (one per line)."
    )
    max_body_bytes: int = setting(
        "JOTGUARD_MAX_BODY_BYTES",
        1024 * 1024,
        _int_between(1024, 1024**3),
        "Largest request body accepted; a larger Content-Length is answered 413 unread.",
    )
    idle_timeout: float = setting(
        "JOTGUARD_IDLE_TIMEOUT",
        60.0,
        remote_settings.seconds_between(0.1, 3600.0),
        "Seconds a connection may stay idle, or take to send a request's headers.",
    )
    body_timeout: float = setting(
        "JOTGUARD_BODY_TIMEOUT",
        30.0,
        remote_settings.seconds_between(0.1, 3600.0),
        "Seconds a client may take to send a request's body.",
    )
    max_connections: int = setting(
        "JOTGUARD_MAX_CONNECTIONS",
        10000,
        _int_between(1, 10_000_000),
        "Connections one process keeps open; more get an immediate 503. Lowered to 3/4 of"
        " the open-file limit when that is lower.",
    )
    ready_timeout: float = setting(
        "JOTGUARD_READY_TIMEOUT",
        0.8,
        remote_settings.seconds_between(0.05, 30.0),
        "Seconds each /readyz check may take (under a 1 s probe timeout by default).",
    )
    cors_origins: tuple[str, ...] = setting(
        "JOTGUARD_CORS_ORIGINS",
        (),
        _origins,
        "Origins browsers may call from (comma-separated, or *); none by default.",
    )

    # -- Auth0 / remote issuers: the tutorial's AUTH0_* names, then jotguard's own ----
    auth0_domain: str = setting(
        "AUTH0_DOMAIN",
        "",
        remote_settings.auth0_domain,
        "Auth0 tenant, e.g. example.eu.auth0.com: turns the Auth0 backend on.",
    )
    auth0_audience: str = setting(
        "AUTH0_AUDIENCE", "", _text, "API identifier Auth0 tokens must carry in aud."
    )
    auth0_issuer: str = setting(
        "AUTH0_ISSUER",
        "",
        remote_settings.remote_url,
        "Issuer URL instead of https://{AUTH0_DOMAIN}/ (self-hosted issuers, tests).",
    )
    auth0_jwks_uri: str = setting(
        "AUTH0_JWKS_URI",
        "",
        remote_settings.remote_url,
        "JWKS URL; default https://{AUTH0_DOMAIN}/.well-known/jwks.json, else discovered.",
    )
    auth0_algorithms: tuple[str, ...] = setting(
        "AUTH0_ALGORITHMS",
        ("RS256",),
        remote_settings.algorithms,
        "Comma-separated algorithms Auth0 tokens may use.",
    )
    auth0_client_id: str = setting(
        "AUTH0_CLIENT_ID", "", _text, "Client id for GET /get-token's client-credentials exchange."
    )
    auth0_client_secret: str = setting(
        "AUTH0_CLIENT_SECRET",
        "",
        _text,
        "Client secret for GET /get-token (environment or .env only).",
        flag=False,
        secret=True,
    )
    auth0_token_url: str = setting(
        "AUTH0_TOKEN_URL",
        "",
        remote_settings.remote_url,
        "Token endpoint instead of https://{AUTH0_DOMAIN}/oauth/token.",
    )
    auth0_token_timeout: float = setting(
        "AUTH0_TOKEN_TIMEOUT",
        10.0,
        remote_settings.seconds_between(0.1, 120),
        "Seconds /get-token waits for the token endpoint (then 504).",
    )
    remote_issuers: tuple[RemoteIssuer, ...] = setting(
        "JOTGUARD_REMOTE_ISSUERS",
        (),
        remote_settings.remote_issuers,
        'More remote issuers, JSON: [{"issuer": ..., "audience": ..., "jwks_uri"?: ...,'
        ' "algorithms"?: [...], "rfc9068"?: true}].',
    )
    jwks_max_age: float = setting(
        "JOTGUARD_JWKS_MAX_AGE",
        600.0,
        remote_settings.seconds_between(1, 86400),
        "Seconds a fetched JWKS is fresh; refreshed in the background before.",
    )
    jwks_max_stale: float = setting(
        "JOTGUARD_JWKS_MAX_STALE",
        86400.0,
        remote_settings.seconds_between(0, 30 * 86400),
        "Seconds past max age a JWKS keeps serving while its endpoint fails.",
    )
    jwks_timeout: float = setting(
        "JOTGUARD_JWKS_TIMEOUT",
        5.0,
        remote_settings.seconds_between(0.1, 60),
        "Seconds to connect to and fetch a JWKS or discovery document.",
    )
    jwks_requests_per_minute: int = setting(
        "JOTGUARD_JWKS_REQUESTS_PER_MINUTE",
        5,
        _int_between(0, 600),
        "JWKS refreshes unknown key ids may cause per minute, per issuer and process.",
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
    admin_issuers: tuple[str, ...] = setting(
        "JOTGUARD_ADMIN_ISSUERS",
        (),
        remote_settings.issuer_list,
        "Remote issuers (comma-separated iss URLs) whose tokens may hold the admin scope;"
        " by default only the local issuer's do.",
    )
    # -- performance --------------------------------------------------------------------
    token_cache_size: int = setting(
        "JOTGUARD_TOKEN_CACHE_SIZE",
        10_000,
        _int_between(0, 1_000_000),
        "Verified tokens remembered so each signature is checked once (never past its exp);"
        " 0 turns the cache off.",
    )
    revocation_poll_interval: float = setting(
        "JOTGUARD_REVOCATION_POLL_INTERVAL",
        1.0,
        remote_settings.seconds_between(0.05, 60),
        "Seconds between polls of the revocation store's change feed by each process's"
        " in-memory mirror (Redis and SQLite changes also wake it at once).",
    )
    revocation_freshness: float = setting(
        "JOTGUARD_REVOCATION_FRESHNESS",
        5.0,
        remote_settings.seconds_between(0.5, 3600),
        "Protected requests get 503 when the mirror has not confirmed it is current for"
        " this many seconds (store down); longer than the poll interval.",
    )
    workers: int = setting(
        "JOTGUARD_WORKERS",
        1,
        _int_between(1, 64),
        "Processes `serve` runs on the one port, each with its own revocation mirror;"
        " about one per CPU.",
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
    refresh_reuse_interval: int = setting(
        "JOTGUARD_REFRESH_REUSE_INTERVAL",
        0,
        _int_between(0, 300),
        "Seconds a just-used refresh token may be used again by its client without counting"
        " as theft (two threads sharing a session); 0: strict reuse detection.",
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
        "Threads that hash passwords; 0: one less than the CPUs, at least 1.",
    )
    password_hash_per_address: int = setting(
        "JOTGUARD_PASSWORD_HASH_PER_ADDRESS",
        0,
        _int_between(0, 64),
        "Password checks one client address may have hashing at once (the rest wait their"
        " turn behind other addresses); 0: half the hashing threads, at least 1.",
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
        remote_settings.seconds_between(0.01, 10),
        "Redis connect and read timeout for rate limiting, seconds.",
    )
    ratelimit_fail_closed: bool = setting(
        "JOTGUARD_RATELIMIT_FAIL_CLOSED",
        False,
        _bool,
        "Answer 503 instead of serving while the rate-limit storage is unreachable.",
    )
    ratelimit_max_keys: int = setting(
        "JOTGUARD_RATELIMIT_MAX_KEYS",
        100_000,
        _int_between(100, 100_000_000),
        "Keys (addresses, clients, users, accounts) each policy counts at once; when full,"
        " no counter is evicted and new keys share one budget until counters expire.",
    )
    # Policies: each accepts `off` (no counting, no headers for it); turning the route
    # policies off leaves the brute-force guards (preauth, failed-auth, password) on.
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
        "Tokens issued, moving window: /oauth/token per verified client and IP (password"
        " and refresh grants per client and user), /get-token per IP.",
    )
    ratelimit_introspect: str = setting(
        "JOTGUARD_RATELIMIT_INTROSPECT",
        "6000/minute",
        _limits,
        "/oauth/introspect and /oauth/revoke, per verified client.",
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
        "Per IP: failed token and client checks (checks in flight hold a slot); once spent,"
        " the IP gets 429 before any check.",
    )
    ratelimit_password: str = setting(
        "JOTGUARD_RATELIMIT_PASSWORD",
        "5/minute;20/hour",
        _limits,
        "Per client and username, from any IP: failed passwords (checks in flight hold a"
        " slot); once spent, that account's logins through that client get 429 unchecked.",
    )
    ratelimit_password_ip: str = setting(
        "JOTGUARD_RATELIMIT_PASSWORD_IP",
        "30/minute;300/hour",
        _limits,
        "Per IP, a coarse flood guard: failed passwords for any account through any client.",
    )
    trusted_proxies: tuple[Network, ...] = setting(
        "JOTGUARD_TRUSTED_PROXIES",
        (),
        parse_networks,
        "Proxies (IPs or CIDRs, comma-separated) whose JOTGUARD_CLIENT_IP_HEADER is believed.",
    )
    client_ip_header: str = setting(
        "JOTGUARD_CLIENT_IP_HEADER",
        "x-forwarded-for",
        _client_ip_header,
        "The header trusted proxies write the client address in: x-forwarded-for,"
        " x-real-ip or forwarded (RFC 7239); no other is read.",
    )
    ratelimit_ipv6_prefix: int = setting(
        "JOTGUARD_RATELIMIT_IPV6_PREFIX",
        56,
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
    def admin_issuer_urls(self) -> frozenset[str]:
        """The issuers whose tokens the admin API accepts the admin scope from."""
        return frozenset({self.issuer_url, *self.admin_issuers})

    @property
    def keyring_path(self) -> Path:
        return self.data_dir / "keyring.json"

    @property
    def key_retention(self) -> int:
        return self.max_token_ttl + self.leeway

    # -- Auth0 / remote issuers -------------------------------------------------------

    def __post_init__(self) -> None:
        found = remote_settings.problem(self)
        if found is not None:
            raise SettingsError(*found)
        if self.revocation_freshness <= self.revocation_poll_interval:
            raise SettingsError(
                "JOTGUARD_REVOCATION_FRESHNESS",
                "must be longer than JOTGUARD_REVOCATION_POLL_INTERVAL"
                f" ({self.revocation_poll_interval:g}s)",
                f"{self.revocation_freshness:g}",
            )
        if self.get_token_client_id and self.auth0_client_id:
            raise SettingsError(
                "JOTGUARD_GET_TOKEN_CLIENT_ID",
                "GET /get-token is already the Auth0 exchange (AUTH0_CLIENT_ID); set only one",
                self.get_token_client_id,
            )

    @property
    def auth0_remote_issuer(self) -> RemoteIssuer | None:
        if not (self.auth0_domain or self.auth0_issuer):
            return None
        return RemoteIssuer.auth0(
            domain=self.auth0_domain,
            audience=self.auth0_audience,
            issuer=self.auth0_issuer,
            jwks_uri=self.auth0_jwks_uri,
            algorithms=self.auth0_algorithms,
        )

    @property
    def remote_issuer_configs(self) -> list[RemoteIssuer]:
        auth0 = self.auth0_remote_issuer
        return [auth0, *self.remote_issuers] if auth0 else list(self.remote_issuers)

    @property
    def jwks_policy(self) -> JWKSPolicy:
        return JWKSPolicy(
            max_age=self.jwks_max_age,
            max_stale=self.jwks_max_stale,
            timeout=self.jwks_timeout,
            requests_per_minute=self.jwks_requests_per_minute,
        )

    @property
    def auth0_client_credentials(self) -> ClientCredentials | None:
        """The /get-token exchange's configuration, when a client id and secret are set."""
        if not (self.auth0_client_id and self.auth0_client_secret):
            return None
        if self.auth0_token_url:
            token_url = self.auth0_token_url
        elif self.auth0_domain:
            token_url = f"https://{self.auth0_domain}/oauth/token"
        else:
            token_url = self.auth0_issuer.rstrip("/") + "/oauth/token"
        return ClientCredentials(
            token_url=token_url,
            client_id=self.auth0_client_id,
            audience=self.auth0_audience,
            client_secret=self.auth0_client_secret,
        )

    @property
    def metrics_port(self) -> int | None:
        """The port of the separate 127.0.0.1 metrics listener, if there is one."""
        return None if self.metrics in {"same", "off"} else int(self.metrics)

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


def _shown_default(value: Any) -> str:
    if isinstance(value, (tuple, list, frozenset)):
        return ",".join(str(v) for v in value)
    return str(value)


def documented_settings() -> list[tuple[str, str, str, str]]:
    """(variable, flag, default, help) for every setting: the README table's source."""
    rows = []
    for f in dataclasses.fields(Settings):
        flag = "--" + f.name.replace("_", "-") if f.metadata["flag"] else ""
        rows.append((f.metadata["env"], flag, _shown_default(f.default), f.metadata["help"]))
    return rows


def markdown_table() -> str:
    """The README's configuration table; regenerate with ``python -m webapp.settings``."""
    lines = ["| variable | flag | default | meaning |", "|---|---|---|---|"]
    for env, flag, default, help in documented_settings():
        flag_cell = f"`{flag}`" if flag else ""
        default_cell = f"`{default}`" if default else "(none)"
        lines.append(f"| `{env}` | {flag_cell} | {default_cell} | {help} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
