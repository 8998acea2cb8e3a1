"""The settings of the listener, the local issuer and operability (metrics, logs, CORS)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from webapp.config import parsers
from webapp.config.fields import setting


@dataclass(frozen=True)
class ServiceFields:
    """Where the service listens, the tokens its own issuer signs, and how it is operated."""

    host: str = setting("JOTGUARD_HOST", "127.0.0.1", parsers.host, "Address to listen on.")
    port: int = setting("JOTGUARD_PORT", 8888, parsers.int_between(0, 65535), "Port to listen on.")
    data_dir: Path = setting(
        "JOTGUARD_DATA_DIR", Path("var"), lambda s: Path(s.strip()), "Keys and SQLite files."
    )
    issuer: str = setting(
        "JOTGUARD_ISSUER",
        "",
        parsers.http_url,
        "Issuer URL of the local issuer; default http://{host}:{port}/.",
    )
    audience: str = setting(
        "JOTGUARD_AUDIENCE",
        "jotguard",
        parsers.text,
        "Audience local tokens are issued for and checked.",
    )
    access_token_ttl: int = setting(
        "JOTGUARD_ACCESS_TOKEN_TTL",
        900,
        parsers.int_between(1, 86400),
        "Access-token lifetime, seconds.",
    )
    max_token_ttl: int = setting(
        "JOTGUARD_MAX_TOKEN_TTL",
        86400,
        parsers.int_between(60, 30 * 86400),
        "Longest lifetime any access token may get; retired keys live this long.",
    )
    leeway: int = setting(
        "JOTGUARD_LEEWAY", 30, parsers.int_between(0, 300), "Clock leeway for exp/nbf/iat, seconds."
    )
    signing_alg: str = setting(
        "JOTGUARD_SIGNING_ALG", "RS256", parsers.algorithm, "RS256, ES256, EdDSA or HS256."
    )
    key_publish_ahead: int = setting(
        "JOTGUARD_KEY_PUBLISH_AHEAD",
        600,
        parsers.int_between(0, 7 * 86400),
        "Seconds `keys rotate` publishes a new key in the JWKS before signing with it"
        " (longer than verifiers cache the JWKS).",
    )
    log_level: str = setting("JOTGUARD_LOG_LEVEL", "INFO", parsers.log_level, "Logging level.")
    env_file: Path = setting(
        "JOTGUARD_ENV_FILE", Path(".env"), lambda s: Path(s.strip()), "The .env file to read."
    )
    # -- operability
    metrics: str = setting(
        "JOTGUARD_METRICS",
        "same",
        parsers.metrics_exposure,
        "/metrics: same (the service port), off, or a port of its own on 127.0.0.1.",
    )
    log_format: str = setting(
        "JOTGUARD_LOG_FORMAT",
        "text",
        parsers.log_format,
        "Log lines as text or JSON (one per line).",
    )
    max_body_bytes: int = setting(
        "JOTGUARD_MAX_BODY_BYTES",
        1024 * 1024,
        parsers.int_between(1024, 1024**3),
        "Largest request body accepted; a larger Content-Length is answered 413 unread.",
    )
    idle_timeout: float = setting(
        "JOTGUARD_IDLE_TIMEOUT",
        60.0,
        parsers.seconds_between(0.1, 3600.0),
        "Seconds a connection may stay idle, or take to send a request's headers.",
    )
    body_timeout: float = setting(
        "JOTGUARD_BODY_TIMEOUT",
        30.0,
        parsers.seconds_between(0.1, 3600.0),
        "Seconds a client may take to send a request's body.",
    )
    max_connections: int = setting(
        "JOTGUARD_MAX_CONNECTIONS",
        10000,
        parsers.int_between(1, 10_000_000),
        "Connections one process keeps open; more get an immediate 503. Lowered to 3/4 of"
        " the open-file limit when that is lower.",
    )
    ready_timeout: float = setting(
        "JOTGUARD_READY_TIMEOUT",
        0.8,
        parsers.seconds_between(0.05, 30.0),
        "Seconds each /readyz check may take (under a 1 s probe timeout by default).",
    )
    cors_origins: tuple[str, ...] = setting(
        "JOTGUARD_CORS_ORIGINS",
        (),
        parsers.origins,
        "Origins browsers may call from (comma-separated, or *); none by default.",
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
    def metrics_port(self) -> int | None:
        """The port of the separate 127.0.0.1 metrics listener, if there is one."""
        return None if self.metrics in {"same", "off"} else int(self.metrics)
