"""The settings of the stateful services: revocation, the token cache, workers, issuance."""

from __future__ import annotations

from dataclasses import dataclass

from webapp.config import parsers
from webapp.config.fields import setting
from webapp.config.remote import issuer_list


@dataclass(frozen=True)
class StoreFields:
    """Revocation and issuance stores, the verified-token cache, workers, password hashing.

    The default stores are files in the data directory: ``Settings`` derives their URLs.
    """

    # -- revocation ---------------------------------------------------------------------
    revocation_store: str = setting(
        "JOTGUARD_REVOCATION_STORE",
        "",
        parsers.store_url,
        "Revocation store URL: sqlite:///path, redis://..., mongodb://..., memory://;"
        " default an SQLite file in the data directory.",
        secret=True,
    )
    revocation_fail_open: bool = setting(
        "JOTGUARD_REVOCATION_FAIL_OPEN",
        False,
        parsers.boolean,
        "Let tokens through (logging each) when the revocation store is down, instead of 503.",
    )
    admin_scope: str = setting(
        "JOTGUARD_ADMIN_SCOPE", "admin", parsers.scope_name, "Scope the admin API requires."
    )
    admin_issuers: tuple[str, ...] = setting(
        "JOTGUARD_ADMIN_ISSUERS",
        (),
        issuer_list,
        "Remote issuers (comma-separated iss URLs) whose tokens may hold the admin scope;"
        " by default only the local issuer's do.",
    )
    # -- performance --------------------------------------------------------------------
    token_cache_size: int = setting(
        "JOTGUARD_TOKEN_CACHE_SIZE",
        10_000,
        parsers.int_between(0, 1_000_000),
        "Verified tokens remembered so each signature is checked once (never past its exp);"
        " 0 turns the cache off.",
    )
    revocation_poll_interval: float = setting(
        "JOTGUARD_REVOCATION_POLL_INTERVAL",
        1.0,
        parsers.seconds_between(0.05, 60),
        "Seconds between polls of the revocation store's change feed by each process's"
        " in-memory mirror (Redis and SQLite changes also wake it at once).",
    )
    revocation_freshness: float = setting(
        "JOTGUARD_REVOCATION_FRESHNESS",
        5.0,
        parsers.seconds_between(0.5, 3600),
        "Protected requests get 503 when the mirror has not confirmed it is current for"
        " this many seconds (store down); longer than the poll interval.",
    )
    workers: int = setting(
        "JOTGUARD_WORKERS",
        1,
        parsers.int_between(1, 64),
        "Processes `serve` runs on the one port, each with its own revocation mirror;"
        " about one per CPU.",
    )
    # -- token issuance -----------------------------------------------------------------
    issuance_store: str = setting(
        "JOTGUARD_ISSUANCE_STORE",
        "",
        parsers.issuance_store_url,
        "Clients, users, refresh tokens and the demo catchphrases: sqlite:///path,"
        " mongodb://..., memory://; default SQLite files in the data directory.",
        secret=True,
    )
    refresh_token_ttl: int = setting(
        "JOTGUARD_REFRESH_TOKEN_TTL",
        14 * 86400,
        parsers.int_between(60, 365 * 86400),
        "Refresh-token lifetime, seconds; each refresh hands out a new one for as long.",
    )
    refresh_reuse_interval: int = setting(
        "JOTGUARD_REFRESH_REUSE_INTERVAL",
        0,
        parsers.int_between(0, 300),
        "Seconds a just-used refresh token may be used again by its client without counting"
        " as theft (two threads sharing a session); 0: strict reuse detection.",
    )
    argon2_time_cost: int = setting(
        "JOTGUARD_ARGON2_TIME_COST", 3, parsers.int_between(1, 20), "argon2id passes per hash."
    )
    argon2_memory_kib: int = setting(
        "JOTGUARD_ARGON2_MEMORY_KIB",
        65536,
        parsers.int_between(64, 4 * 1024 * 1024),
        "argon2id memory per hash, KiB (each hashing thread uses this much).",
    )
    password_hash_workers: int = setting(
        "JOTGUARD_PASSWORD_HASH_WORKERS",
        0,
        parsers.int_between(0, 64),
        "Threads that hash passwords; 0: one less than the CPUs, at least 1.",
    )
    password_hash_per_address: int = setting(
        "JOTGUARD_PASSWORD_HASH_PER_ADDRESS",
        0,
        parsers.int_between(0, 64),
        "Password checks one client address may have hashing at once (the rest wait their"
        " turn behind other addresses); 0: half the hashing threads, at least 1.",
    )
    get_token_client_id: str = setting(
        "JOTGUARD_GET_TOKEN_CLIENT_ID",
        "",
        parsers.text,
        "Turns on GET /get-token (local mode) for this client; not for production.",
    )
    get_token_client_secret: str = setting(
        "JOTGUARD_GET_TOKEN_CLIENT_SECRET",
        "",
        parsers.text,
        "The /get-token client's secret (environment or .env only, never a flag).",
        flag=False,
        secret=True,
    )
