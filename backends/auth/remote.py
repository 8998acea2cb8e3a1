"""Backends for issuers jotguard does not run: Auth0 or any issuer publishing a JWKS."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from tornado.httpclient import AsyncHTTPClient

from backends.auth.compact import UnverifiedToken
from backends.auth.verifier import JWTVerifier
from backends.keys.jwks import JWKSKeySource, JWKSPolicy, JWKSStatus
from backends.principal import Principal
from backends.telemetry import Sample


@dataclass(frozen=True, slots=True)
class RemoteIssuer:
    """One trusted remote issuer: its exact ``iss``, the audiences we accept, its keys.

    ``jwks_uri=None`` discovers the key set from the issuer's metadata.
    ``rfc9068=True`` holds its tokens to the RFC 9068 access-token profile (``typ:
    at+jwt``; ``iat``, ``jti`` and ``client_id`` required); off by default, since
    Auth0 and many others sign ``typ: JWT``.
    ``dpop``: ``"required"`` refuses its tokens as bearer tokens, ``"allowed"`` takes
    them so even where DPoP is required otherwise; None follows the service's setting.
    """

    issuer: str
    audiences: tuple[str, ...]
    jwks_uri: str | None = None
    algorithms: tuple[str, ...] = ("RS256",)
    rfc9068: bool = False
    dpop: Literal["allowed", "required"] | None = None

    @classmethod
    def auth0(
        cls,
        *,
        audience: str,
        domain: str = "",
        issuer: str = "",
        jwks_uri: str = "",
        algorithms: tuple[str, ...] = ("RS256",),
    ) -> RemoteIssuer:
        """The tutorial's derivation: issuer ``https://{domain}/``, JWKS under it.

        ``issuer`` and ``jwks_uri`` override the derived URLs (tests, self-hosted
        issuers); with an issuer but neither a domain nor a JWKS URI, the key set
        is discovered.
        """
        derived_jwks = f"https://{domain}/.well-known/jwks.json" if domain else None
        return cls(
            issuer=issuer or f"https://{domain}/",
            audiences=(audience,),
            jwks_uri=jwks_uri or derived_jwks,
            algorithms=algorithms,
        )


class RemoteIssuerBackend:
    """Verifies one remote issuer's tokens against its published, cached key set.

    Access tokens without ``jti`` are accepted (Auth0 issues them); scopes come
    from ``scope`` and from Auth0's RBAC ``permissions``.
    """

    def __init__(
        self,
        config: RemoteIssuer,
        *,
        policy: JWKSPolicy | None = None,
        http_client: AsyncHTTPClient | None = None,
        leeway: int = 30,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.issuer = config.issuer
        self.keys = JWKSKeySource(
            issuer=config.issuer,
            jwks_uri=config.jwks_uri,
            algorithms=config.algorithms,
            policy=policy,
            http_client=http_client,
            clock=clock,
        )
        self.verifier = JWTVerifier(
            issuer=config.issuer,
            audiences=config.audiences,
            keys=self.keys,
            algorithms=config.algorithms,
            leeway=leeway,
            clock=clock,
            require_jti=False,
            rfc9068=config.rfc9068,
        )

    async def authenticate(self, token: UnverifiedToken) -> Principal:
        return await self.verifier.verify(token)

    def keys_usable_until(self) -> float | None:
        # The cached key set's max-stale bound: past it a token verified earlier is not
        # taken as verified any more, exactly as a new token gets 503 then.
        return self.keys.usable_until()

    def start(self) -> None:
        """Fetch the key set now and keep it fresh in the background."""
        self.keys.start()

    async def aclose(self) -> None:
        await self.keys.aclose()

    def status(self) -> JWKSStatus:
        return self.keys.status()

    async def ready(self) -> None:
        """Readiness: a usable key set is cached. Reads the cache, never fetches."""
        status = self.keys.status()
        if not status.has_keys:
            raise RuntimeError(f"no usable key set for {self.issuer}: {status.last_error}")

    def telemetry(self) -> Iterator[Sample]:
        status = self.keys.status()
        labels = {"issuer": self.issuer}
        yield Sample("jwks_fetches_total", "counter", "JWKS fetches", status.fetches, labels)
        yield Sample(
            "jwks_fetch_failures_total", "counter", "Failed JWKS fetches", status.failures, labels
        )
        yield Sample(
            "jwks_unknown_kid_throttled_total",
            "counter",
            "Unknown-kid refreshes refused by the per-minute budget",
            status.unknown_kid_throttled,
            labels,
        )
        yield Sample("jwks_keys", "gauge", "Usable keys cached", len(status.key_ids), labels)
        yield Sample(
            "jwks_fresh", "gauge", "1 if the key set is within max age", status.fresh, labels
        )
        if status.last_success_at is not None:
            yield Sample(
                "jwks_last_success_timestamp_seconds",
                "gauge",
                "When the key set was last fetched",
                status.last_success_at,
                labels,
            )
