"""The errors jotguard answers a request with, free of any web framework.

One root, :class:`JotguardError`, in the shape of joserfc's ``JoseError``: a
class-level ``error`` code (RFC 6749, 6750, 9449 or jotguard's own) and a
``description`` that is safe to show the client (it never contains a token).
How each is answered over HTTP (status, challenge, ``Retry-After``) is one table,
``webapp.web.errors.ERRORS``.

Two families must never be confused:

- :class:`AuthError`: the credentials are bad. The client should not send them again.
- :class:`BackendUnavailable`: jotguard cannot decide now (a store or key source is
  down). The credentials may be fine; a retry may succeed.

``reason``, where present, is a stable, low-cardinality label for logs and metrics.
"""

from __future__ import annotations


class JotguardError(Exception):
    """Root of the errors a request can end in; ``str()`` is the description."""

    error: str | None = None

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


# --- the credentials are bad ----------------------------------------------------------- #


class AuthError(JotguardError):
    """Credentials were refused, with an RFC 6750 ``error`` code."""

    error: str | None = "invalid_token"

    def __init__(self, description: str, *, reason: str = "invalid_token") -> None:
        super().__init__(description)
        self.reason = reason


class MissingCredentials(AuthError):
    """No bearer credentials at all: a bare challenge, no error code (RFC 6750 §3.1)."""

    error = None

    def __init__(self, description: str = "Bearer token required") -> None:
        super().__init__(description, reason="missing")


class MalformedRequest(AuthError):
    error = "invalid_request"

    def __init__(self, description: str) -> None:
        super().__init__(description, reason="malformed")


class InvalidToken(AuthError):
    """The token is bad, expired, revoked or not meant for us."""


class InsufficientScope(AuthError):
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


# --- jotguard cannot decide now ------------------------------------------------------- #


class BackendUnavailable(JotguardError):
    """A store or key source needed for the decision cannot answer: fail closed.

    Not an ``AuthError``: clients treat a refusal of their credentials ("token dead,
    log out") differently from "retry in ``retry_after`` seconds".
    """

    error = "temporarily_unavailable"

    def __init__(
        self, description: str, *, retry_after: int = 5, reason: str = "store_unavailable"
    ) -> None:
        super().__init__(description)
        self.retry_after = retry_after
        self.reason = reason


# --- the caller has spent its budget ------------------------------------------------- #


class RateLimited(JotguardError):
    """Over a rate limit: retry in ``retry_after`` seconds.

    ``headers`` are the quota's ``RateLimit`` fields, carried here because Tornado's
    ``send_error`` clears the headers set before the refusal was raised.
    """

    error = "rate_limited"

    def __init__(
        self, description: str, *, retry_after: int, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(description)
        self.retry_after = retry_after
        self.headers = dict(headers or {})


# --- the request itself --------------------------------------------------------------- #


class InvalidInput(JotguardError):
    """A body or parameter is unacceptable; the description says why."""

    error = "invalid_request"


class NotFound(JotguardError):
    """What the request names does not exist."""

    error = "not_found"


# --- GET /get-token's upstream gave no usable answer ---------------------------------- #


class ExchangeFailed(JotguardError):
    """A gateway error: the upstream's answer is neither a token nor an OAuth error."""

    error = "upstream_error"


class ExchangeUnreachable(ExchangeFailed):
    error = "upstream_unavailable"


class ExchangeTimedOut(ExchangeFailed):
    error = "upstream_timeout"


class ConfigError(Exception):
    """A setting or stored file is unusable; start-up must stop with this message."""


def quoted(value: str) -> str:
    """``value`` as the inside of an RFC 9110 §5.6.4 quoted-string (a challenge parameter)."""
    return value.replace("\\", "\\\\").replace('"', '\\"')
