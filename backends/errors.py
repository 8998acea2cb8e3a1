"""Typed failures raised by backends, each carrying what HTTP needs to answer it.

The ``reason`` is a stable, low-cardinality label for logs and metrics; the
``description`` is safe to show to the client (it never contains a token).
"""

from __future__ import annotations


class AuthError(Exception):
    """Credentials were refused. RFC 6750 ``error`` code plus HTTP status."""

    status: int = 401
    error: str | None = "invalid_token"

    def __init__(self, description: str, *, reason: str = "invalid_token") -> None:
        super().__init__(description)
        self.description = description
        self.reason = reason


class MissingCredentials(AuthError):
    """No bearer credentials at all: a bare challenge, no error code (RFC 6750 §3.1)."""

    error = None

    def __init__(self, description: str = "Bearer token required") -> None:
        super().__init__(description, reason="missing")


class MalformedRequest(AuthError):
    status = 400
    error = "invalid_request"

    def __init__(self, description: str) -> None:
        super().__init__(description, reason="malformed")


class InvalidToken(AuthError):
    """The token is bad, expired, revoked or not meant for us."""


class InsufficientScope(AuthError):
    status = 403
    error = "insufficient_scope"

    def __init__(
        self, required: tuple[str, ...], *, any_of: bool = False, description: str | None = None
    ) -> None:
        joiner = "one of" if any_of else "all of"
        super().__init__(
            description or f"The token lacks the required scope ({joiner}: {' '.join(required)})",
            reason="insufficient_scope",
        )
        self.required = required


class BackendUnavailable(AuthError):
    """A store or key source needed for the decision cannot answer: fail closed.

    503, never 401: clients treat 401 as "token dead, log out".
    """

    status = 503
    error = "temporarily_unavailable"

    def __init__(self, description: str, *, retry_after: int = 5) -> None:
        super().__init__(description, reason="store_unavailable")
        self.retry_after = retry_after


class ConfigError(Exception):
    """A setting or stored file is unusable; start-up must stop with this message."""
