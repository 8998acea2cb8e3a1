"""OAuth 2.0 token-endpoint errors (RFC 6749 §5.2), free of any web framework."""

from __future__ import annotations

from backends.errors import JotguardError


class OAuthError(JotguardError):
    """``error`` is the RFC 6749 code; ``description`` is safe to show the client."""

    error: str = "invalid_request"

    def __str__(self) -> str:
        return f"{self.error}: {self.description}"


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    """Client authentication failed (answered with a ``Basic`` challenge)."""

    error = "invalid_client"

    def __init__(self, description: str = "Client authentication failed") -> None:
        super().__init__(description)


class InvalidGrant(OAuthError):
    error = "invalid_grant"


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class InvalidScope(OAuthError):
    error = "invalid_scope"
