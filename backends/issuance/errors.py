"""OAuth 2.0 token-endpoint errors (RFC 6749 §5.2), free of any web framework."""

from __future__ import annotations


class OAuthError(Exception):
    """``error`` is the RFC 6749 code; ``description`` is safe to show the client."""

    status = 400

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


class InvalidRequest(OAuthError):
    def __init__(self, description: str) -> None:
        super().__init__("invalid_request", description)


class InvalidClient(OAuthError):
    """Client authentication failed: 401, with a ``Basic`` challenge."""

    status = 401

    def __init__(self, description: str = "Client authentication failed") -> None:
        super().__init__("invalid_client", description)


class InvalidGrant(OAuthError):
    def __init__(self, description: str) -> None:
        super().__init__("invalid_grant", description)


class UnauthorizedClient(OAuthError):
    def __init__(self, description: str) -> None:
        super().__init__("unauthorized_client", description)


class UnsupportedGrantType(OAuthError):
    def __init__(self, description: str) -> None:
        super().__init__("unsupported_grant_type", description)


class InvalidScope(OAuthError):
    def __init__(self, description: str) -> None:
        super().__init__("invalid_scope", description)
