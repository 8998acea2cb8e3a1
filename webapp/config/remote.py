"""The Auth0 and remote-issuer settings: their parsers, declarations and derived objects.

Parsers raise ``ValueError`` with a one-line reason; the settings loader turns that
into a ``SettingsError`` naming the variable. Checks across these settings (and
against the local issuer) are in ``webapp.config.checks``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from backends.auth.remote import RemoteIssuer
from backends.keys.jwks import SUPPORTED_ALGORITHMS, JWKSPolicy
from backends.outbound import secure_url
from backends.outbound.token_exchange import ClientCredentials
from webapp.config import parsers
from webapp.config.fields import setting

_ENTRY_KEYS = frozenset({"issuer", "audience", "jwks_uri", "algorithms", "rfc9068", "dpop"})


def remote_url(raw: str) -> str:
    """An https URL (http only to a loopback host), or empty for "not set"."""
    if not raw.strip():
        return ""
    return secure_url(raw)


def auth0_domain_name(raw: str) -> str:
    value = raw.strip().lower()
    if not value:
        return ""
    if "://" in value or "/" in value or any(c.isspace() for c in value):
        raise ValueError("must be a bare host name such as example.eu.auth0.com (no scheme)")
    secure_url(f"https://{value}/")
    return value


def _algorithm_list(values: list[Any], where: str) -> tuple[str, ...]:
    names = [v.strip() if isinstance(v, str) else "" for v in values]
    if not names or any(name not in SUPPORTED_ALGORITHMS for name in names):
        allowed = ", ".join(sorted(SUPPORTED_ALGORITHMS))
        raise ValueError(f"{where}must list algorithms from {allowed}")
    return tuple(dict.fromkeys(names))


def algorithms(raw: str) -> tuple[str, ...]:
    return _algorithm_list(raw.split(","), "")


def _entry(index: int, entry: Any) -> RemoteIssuer:
    where = f"entry {index}: "
    if not isinstance(entry, dict):
        raise ValueError(f"{where}must be an object")
    unknown = set(entry) - _ENTRY_KEYS
    if unknown:
        raise ValueError(f"{where}unknown key {sorted(unknown)[0]!r}")
    issuer = entry.get("issuer")
    if not isinstance(issuer, str) or not issuer:
        raise ValueError(f"{where}'issuer' is required")
    audience = entry.get("audience")
    audiences = [audience] if isinstance(audience, str) else audience
    if (
        not isinstance(audiences, list)
        or not audiences
        or not all(isinstance(a, str) and a for a in audiences)
    ):
        raise ValueError(f"{where}'audience' must be a string or a list of strings")
    jwks_uri = entry.get("jwks_uri")
    if jwks_uri is not None and not isinstance(jwks_uri, str):
        raise ValueError(f"{where}'jwks_uri' must be a string")
    algs = entry.get("algorithms", ["RS256"])
    if isinstance(algs, str):
        algs = algs.split(",")
    if not isinstance(algs, list):
        raise ValueError(f"{where}'algorithms' must be a list")
    rfc9068 = entry.get("rfc9068", False)
    if not isinstance(rfc9068, bool):
        raise ValueError(f"{where}'rfc9068' must be true or false")
    dpop = entry.get("dpop")
    if dpop is not None and dpop not in ("allowed", "required"):
        raise ValueError(f'{where}\'dpop\' must be "allowed" or "required"')
    try:
        secure_url(issuer)
        if jwks_uri:
            secure_url(jwks_uri)
    except ValueError as exc:
        raise ValueError(f"{where}URL {exc}") from None
    return RemoteIssuer(
        issuer=issuer,
        audiences=tuple(audiences),
        jwks_uri=jwks_uri or None,
        algorithms=_algorithm_list(algs, where),
        rfc9068=rfc9068,
        dpop=dpop,
    )


def remote_issuers_json(raw: str) -> tuple[RemoteIssuer, ...]:
    """A JSON list of ``{"issuer", "audience", "jwks_uri"?, "algorithms"?, "rfc9068"?,
    "dpop"?}``."""
    if not raw.strip():
        return ()
    try:
        document = json.loads(raw)
    except ValueError:
        raise ValueError("must be a JSON list of issuer objects") from None
    if not isinstance(document, list):
        raise ValueError("must be a JSON list of issuer objects")
    issuers = tuple(_entry(i, e) for i, e in enumerate(document, start=1))
    seen: set[str] = set()
    for issuer in issuers:
        if issuer.issuer in seen:
            raise ValueError(f"issuer {issuer.issuer!r} is listed twice")
        seen.add(issuer.issuer)
    return issuers


def issuer_list(raw: str) -> tuple[str, ...]:
    """Comma-separated issuer URLs, each exactly as its tokens' ``iss`` spells it."""
    names = [name.strip() for name in raw.split(",") if name.strip()]
    for name in names:
        if "://" not in name or any(c.isspace() for c in name):
            raise ValueError("must be comma-separated issuer URLs, as the tokens' iss")
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class RemoteIssuerFields:
    """Trusted remote issuers: Auth0 under the tutorial's AUTH0_* names, then any others."""

    auth0_domain: str = setting(
        "AUTH0_DOMAIN",
        "",
        auth0_domain_name,
        "Auth0 tenant, e.g. example.eu.auth0.com: turns the Auth0 backend on.",
    )
    auth0_audience: str = setting(
        "AUTH0_AUDIENCE", "", parsers.text, "API identifier Auth0 tokens must carry in aud."
    )
    auth0_issuer: str = setting(
        "AUTH0_ISSUER",
        "",
        remote_url,
        "Issuer URL instead of https://{AUTH0_DOMAIN}/ (self-hosted issuers, tests).",
    )
    auth0_jwks_uri: str = setting(
        "AUTH0_JWKS_URI",
        "",
        remote_url,
        "JWKS URL; default https://{AUTH0_DOMAIN}/.well-known/jwks.json, else discovered.",
    )
    auth0_algorithms: tuple[str, ...] = setting(
        "AUTH0_ALGORITHMS",
        ("RS256",),
        algorithms,
        "Comma-separated algorithms Auth0 tokens may use.",
    )
    auth0_client_id: str = setting(
        "AUTH0_CLIENT_ID",
        "",
        parsers.text,
        "Client id for GET /get-token's client-credentials exchange.",
    )
    auth0_client_secret: str = setting(
        "AUTH0_CLIENT_SECRET",
        "",
        parsers.text,
        "Client secret for GET /get-token (environment or .env only).",
        flag=False,
        secret=True,
    )
    auth0_token_url: str = setting(
        "AUTH0_TOKEN_URL",
        "",
        remote_url,
        "Token endpoint instead of https://{AUTH0_DOMAIN}/oauth/token.",
    )
    auth0_token_timeout: float = setting(
        "AUTH0_TOKEN_TIMEOUT",
        10.0,
        parsers.seconds_between(0.1, 120),
        "Seconds /get-token waits for the token endpoint (then 504).",
    )
    remote_issuers: tuple[RemoteIssuer, ...] = setting(
        "JOTGUARD_REMOTE_ISSUERS",
        (),
        remote_issuers_json,
        'More remote issuers, JSON: [{"issuer": ..., "audience": ..., "jwks_uri"?: ...,'
        ' "algorithms"?: [...], "rfc9068"?: true, "dpop"?: "required" or "allowed"}].',
    )
    jwks_max_age: float = setting(
        "JOTGUARD_JWKS_MAX_AGE",
        600.0,
        parsers.seconds_between(1, 86400),
        "Seconds a fetched JWKS is fresh; refreshed in the background before.",
    )
    jwks_max_stale: float = setting(
        "JOTGUARD_JWKS_MAX_STALE",
        86400.0,
        parsers.seconds_between(0, 30 * 86400),
        "Seconds past max age a JWKS keeps serving while its endpoint fails.",
    )
    jwks_timeout: float = setting(
        "JOTGUARD_JWKS_TIMEOUT",
        5.0,
        parsers.seconds_between(0.1, 60),
        "Seconds to connect to and fetch a JWKS or discovery document.",
    )
    jwks_requests_per_minute: int = setting(
        "JOTGUARD_JWKS_REQUESTS_PER_MINUTE",
        5,
        parsers.int_between(0, 600),
        "JWKS refreshes unknown key ids may cause per minute, per issuer and process.",
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
