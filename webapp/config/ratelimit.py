"""The rate-limit settings: the counters' storage, each policy's limits, client addresses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backends.ratelimit import check_storage_uri
from webapp.config import parsers
from webapp.config.fields import setting
from webapp.web.clientip import Network, parse_networks


def policy(env: str, default: str, help: str) -> Any:
    """A policy's limits: in the ``limits`` notation, or ``off``."""
    return setting(env, default, parsers.rate_limits, help)


@dataclass(frozen=True)
class RateLimitFields:
    """Rate limiting (issue 6): limits in the ``limits`` notation, e.g. 10/minute;100/hour."""

    ratelimit_storage: str = setting(
        "JOTGUARD_RATELIMIT_STORAGE",
        "memory://",
        check_storage_uri,
        "Rate-limit counters: memory:// (this process) or redis://host:port/db (all instances).",
        secret=True,
    )
    ratelimit_key_prefix: str = setting(
        "JOTGUARD_RATELIMIT_KEY_PREFIX",
        "jotguard:ratelimit",
        parsers.key_prefix,
        "Prefix of the rate-limit keys in Redis.",
    )
    ratelimit_timeout: float = setting(
        "JOTGUARD_RATELIMIT_TIMEOUT",
        0.5,
        parsers.seconds_between(0.01, 10),
        "The longest a rate-limit decision waits for Redis (connecting included), seconds.",
    )
    ratelimit_fail_closed: bool = setting(
        "JOTGUARD_RATELIMIT_FAIL_CLOSED",
        False,
        parsers.boolean,
        "Answer 503 instead of serving while the rate-limit storage is unreachable.",
    )
    ratelimit_max_keys: int = setting(
        "JOTGUARD_RATELIMIT_MAX_KEYS",
        100_000,
        parsers.int_between(100, 100_000_000),
        "Keys (addresses, clients, users, accounts) each policy counts at once; when full,"
        " no counter is evicted and new keys share one budget until counters expire.",
    )
    # Policies: each accepts `off` (no counting, no headers for it); turning the route
    # policies off leaves the brute-force guards (preauth, failed-auth, password) on.
    ratelimit_default: str = policy(
        "JOTGUARD_RATELIMIT_DEFAULT",
        "600/minute",
        "Every limited route without its own limit: per user, or per IP when anonymous.",
    )
    ratelimit_token: str = policy(
        "JOTGUARD_RATELIMIT_TOKEN",
        "10/minute;100/hour",
        "Tokens issued, moving window: /oauth/token per verified client and IP (password"
        " and refresh grants per client and user), /get-token per IP.",
    )
    ratelimit_introspect: str = policy(
        "JOTGUARD_RATELIMIT_INTROSPECT",
        "6000/minute",
        "/oauth/introspect and /oauth/revoke, per verified client.",
    )
    ratelimit_admin: str = policy(
        "JOTGUARD_RATELIMIT_ADMIN",
        "60/minute",
        "The admin API (/admin/*), per user.",
    )
    ratelimit_api: str = policy(
        "JOTGUARD_RATELIMIT_API",
        "300/minute",
        "The demo API (/api/*), per user.",
    )
    ratelimit_preauth: str = policy(
        "JOTGUARD_RATELIMIT_PREAUTH",
        "3000/minute",
        "Per IP: requests with credentials to check, counted before any check.",
    )
    ratelimit_failed_auth: str = policy(
        "JOTGUARD_RATELIMIT_FAILED_AUTH",
        "10/minute;100/hour",
        "Per IP: failed token and client checks (checks in flight hold a slot); once spent,"
        " the IP gets 429 before any check.",
    )
    ratelimit_password: str = policy(
        "JOTGUARD_RATELIMIT_PASSWORD",
        "5/minute;20/hour",
        "Per client and username, from any IP: failed passwords (checks in flight hold a"
        " slot); once spent, that account's logins through that client get 429 unchecked.",
    )
    ratelimit_password_ip: str = policy(
        "JOTGUARD_RATELIMIT_PASSWORD_IP",
        "30/minute;300/hour",
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
        parsers.client_ip_header,
        "The header trusted proxies write the client address in: x-forwarded-for,"
        " x-real-ip or forwarded (RFC 7239); no other is read.",
    )
    ratelimit_ipv6_prefix: int = setting(
        "JOTGUARD_RATELIMIT_IPV6_PREFIX",
        56,
        parsers.int_between(32, 128),
        "IPv6 clients are counted per network of this prefix length.",
    )
