"""Every check that reads more than one setting, so the rules between settings are in one place.

``check`` runs whenever a ``Settings`` is built; ``check_get_token`` when the issuance
service opens (``init`` and ``keys`` work without the secret); ``check_workers`` before
``serve`` forks more than one worker. They read settings through ``Checked``, not
``Settings``, so this module does not import the one that calls it.
"""

from __future__ import annotations

from typing import Protocol

from backends.auth.remote import RemoteIssuer
from backends.errors import ConfigError
from webapp.config.fields import SettingsError


class Checked(Protocol):
    """The settings the checks read (``Settings`` has them all)."""

    @property
    def issuer_url(self) -> str: ...
    @property
    def auth0_domain(self) -> str: ...
    @property
    def auth0_issuer(self) -> str: ...
    @property
    def auth0_audience(self) -> str: ...
    @property
    def auth0_jwks_uri(self) -> str: ...
    @property
    def auth0_client_id(self) -> str: ...
    @property
    def auth0_client_secret(self) -> str: ...
    @property
    def auth0_token_url(self) -> str: ...
    @property
    def auth0_remote_issuer(self) -> RemoteIssuer | None: ...
    @property
    def remote_issuers(self) -> tuple[RemoteIssuer, ...]: ...
    @property
    def admin_issuers(self) -> tuple[str, ...]: ...
    @property
    def revocation_poll_interval(self) -> float: ...
    @property
    def revocation_freshness(self) -> float: ...
    @property
    def revocation_store_url(self) -> str: ...
    @property
    def get_token_client_id(self) -> str: ...
    @property
    def get_token_client_secret(self) -> str: ...
    @property
    def metrics_port(self) -> int | None: ...
    @property
    def dpop(self) -> str: ...


def check(s: Checked) -> None:
    """:raises SettingsError: the first inconsistency, naming the variable to fix."""
    found = _remote_issuer_problem(s)
    if found is not None:
        raise SettingsError(*found)
    if s.revocation_freshness <= s.revocation_poll_interval:
        raise SettingsError(
            "JOTGUARD_REVOCATION_FRESHNESS",
            "must be longer than JOTGUARD_REVOCATION_POLL_INTERVAL"
            f" ({s.revocation_poll_interval:g}s)",
            f"{s.revocation_freshness:g}",
        )
    if s.get_token_client_id and s.auth0_client_id:
        raise SettingsError(
            "JOTGUARD_GET_TOKEN_CLIENT_ID",
            "GET /get-token is already the Auth0 exchange (AUTH0_CLIENT_ID); set only one",
            s.get_token_client_id,
        )


def _remote_issuer_problem(s: Checked) -> tuple[str, str, str] | None:
    """The first inconsistency between remote-issuer settings: (variable, problem, value)."""
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
    if s.dpop == "off":
        for issuer in s.remote_issuers:
            if issuer.dpop is not None:
                return (
                    "JOTGUARD_REMOTE_ISSUERS",
                    f'the issuer {issuer.issuer} sets "dpop", but JOTGUARD_DPOP is off',
                    issuer.issuer,
                )
    for name in s.admin_issuers:
        if name not in taken:
            return (
                "JOTGUARD_ADMIN_ISSUERS",
                "names an issuer no setting configures (JOTGUARD_ISSUER, AUTH0_*, remote)",
                name,
            )
    return None


def check_get_token(s: Checked) -> None:
    """:raises SettingsError: local /get-token is on without its client's secret."""
    if s.get_token_client_id and not s.get_token_client_secret:
        raise SettingsError(
            "JOTGUARD_GET_TOKEN_CLIENT_SECRET",
            "required when JOTGUARD_GET_TOKEN_CLIENT_ID is set",
            "",
        )


def check_workers(s: Checked) -> None:
    """:raises ConfigError: settings several workers cannot share."""
    if s.revocation_store_url.startswith("memory:"):
        raise ConfigError(
            "--workers: each worker would keep its own memory:// revocation list, so a"
            " revocation through one would not reach the others; use sqlite:///, redis://"
            " or mongodb://"
        )
    if s.metrics_port is not None:
        raise ConfigError(
            "--workers: every worker would bind the separate metrics port"
            f" {s.metrics_port}; use JOTGUARD_METRICS=same (each scrape then reports"
            " the worker that answered it) or off"
        )
