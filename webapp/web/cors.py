"""Cross-origin access for browser clients.

Credentials travel in the ``Authorization`` header, never in cookies, so no
``Access-Control-Allow-Credentials`` is sent and a preflight needs no
authentication. Browsers hide response headers from scripts unless they are
exposed: ``WWW-Authenticate`` is, so a browser client can read why it was refused,
and ``DPoP-Nonce``, so it can make its next DPoP proof.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# DPoP: the proof of an ``Authorization: DPoP`` request (RFC 9449 §4.1).
ALLOWED_REQUEST_HEADERS = ("Authorization", "Content-Type", "DPoP", "X-Request-ID")
EXPOSED_HEADERS = (
    "WWW-Authenticate",
    "DPoP-Nonce",  # the nonce a DPoP client must put in its next proof (RFC 9449 §8-9)
    "Retry-After",
    "RateLimit",
    "RateLimit-Policy",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "X-Request-ID",
)
PREFLIGHT_MAX_AGE = 600


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    """The origins allowed to call the API (``JOTGUARD_CORS_ORIGINS``), already normalised."""

    origins: frozenset[str]

    @classmethod
    def from_origins(cls, origins: Iterable[str]) -> CorsPolicy | None:
        """The policy, or None when no origin is allowed (no CORS headers at all)."""
        allowed = frozenset(origins)
        return cls(allowed) if allowed else None

    def _allow_origin(self, origin: str | None) -> str | None:
        if "*" in self.origins:
            return "*"
        if origin is not None and origin.lower() in self.origins:
            return origin
        return None

    def response_headers(self, origin: str | None) -> dict[str, str]:
        """Headers for any response to a request from ``origin`` (error responses too)."""
        headers = {} if "*" in self.origins else {"Vary": "Origin"}
        allow = self._allow_origin(origin)
        if allow is not None:
            headers["Access-Control-Allow-Origin"] = allow
            headers["Access-Control-Expose-Headers"] = ", ".join(EXPOSED_HEADERS)
        return headers

    def preflight_headers(self, origin: str | None, methods: Iterable[str]) -> dict[str, str]:
        """Extra headers answering a preflight from an allowed ``origin``; empty otherwise."""
        if self._allow_origin(origin) is None:
            return {}
        return {
            "Access-Control-Allow-Methods": ", ".join(methods),
            "Access-Control-Allow-Headers": ", ".join(ALLOWED_REQUEST_HEADERS),
            "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE),
        }
