"""Parsers and cross-checks for the Auth0 / remote-issuer settings.

Kept apart from ``settings.py`` because there are several and they are only
about remote issuers. Parsers raise ``ValueError`` with a one-line reason; the
settings loader turns that into a ``SettingsError`` naming the variable.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from backends.jwks import SUPPORTED_ALGORITHMS
from backends.outbound import secure_url
from backends.remote import RemoteIssuer

if TYPE_CHECKING:
    from webapp.settings import Settings

_ENTRY_KEYS = frozenset({"issuer", "audience", "jwks_uri", "algorithms", "rfc9068"})


def remote_url(raw: str) -> str:
    """An https URL (http only to a loopback host), or empty for "not set"."""
    if not raw.strip():
        return ""
    return secure_url(raw)


def auth0_domain(raw: str) -> str:
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


def seconds_between(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError(f"must be a number of seconds from {low:g} to {high:g}") from None
        if not low <= value <= high:
            raise ValueError(f"must be a number of seconds from {low:g} to {high:g}")
        return value

    return parse


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
    )


def remote_issuers(raw: str) -> tuple[RemoteIssuer, ...]:
    """A JSON list of ``{"issuer", "audience", "jwks_uri"?, "algorithms"?, "rfc9068"?}``."""
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


def problem(settings: Settings) -> tuple[str, str, str] | None:
    """The first inconsistency between remote-issuer settings: (variable, problem, value)."""
    s = settings
    auth0_on = bool(s.auth0_domain or s.auth0_issuer)
    if s.auth0_jwks_uri and not auth0_on:
        return "AUTH0_JWKS_URI", "needs AUTH0_DOMAIN or AUTH0_ISSUER", s.auth0_jwks_uri
    if auth0_on and not s.auth0_audience:
        return "AUTH0_AUDIENCE", "is required when AUTH0_DOMAIN or AUTH0_ISSUER is set", ""
    if bool(s.auth0_client_id) != bool(s.auth0_client_secret):
        missing = "AUTH0_CLIENT_SECRET" if s.auth0_client_id else "AUTH0_CLIENT_ID"
        return missing, "is required with AUTH0_CLIENT_ID / AUTH0_CLIENT_SECRET for /get-token", ""
    if s.auth0_client_id:
        if not (s.auth0_token_url or s.auth0_domain or s.auth0_issuer):
            return "AUTH0_TOKEN_URL", "is required for /get-token without AUTH0_DOMAIN", ""
        if not s.auth0_audience:
            return "AUTH0_AUDIENCE", "is required for /get-token", ""
    taken = {s.issuer_url: "the local issuer (JOTGUARD_ISSUER)"}
    auth0 = s.auth0_remote_issuer
    if auth0 is not None:
        name = "AUTH0_ISSUER" if s.auth0_issuer else "AUTH0_DOMAIN"
        if auth0.issuer in taken:
            return name, f"that issuer is already {taken[auth0.issuer]}", auth0.issuer
        taken[auth0.issuer] = "the Auth0 issuer"
    for issuer in s.remote_issuers:
        if issuer.issuer in taken:
            return (
                "JOTGUARD_REMOTE_ISSUERS",
                f"the issuer {issuer.issuer} is already {taken[issuer.issuer]}",
                issuer.issuer,
            )
        taken[issuer.issuer] = "a remote issuer"
    for name in s.admin_issuers:
        if name not in taken:
            return (
                "JOTGUARD_ADMIN_ISSUERS",
                "names an issuer no setting configures (JOTGUARD_ISSUER, AUTH0_*, remote)",
                name,
            )
    return None


def issuer_list(raw: str) -> tuple[str, ...]:
    """Comma-separated issuer URLs, each exactly as its tokens' ``iss`` spells it."""
    names = [name.strip() for name in raw.split(",") if name.strip()]
    for name in names:
        if "://" not in name or any(c.isspace() for c in name):
            raise ValueError("must be comma-separated issuer URLs, as the tokens' iss")
    return tuple(dict.fromkeys(names))
