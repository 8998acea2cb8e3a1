"""HTTP errors that carry their own headers.

Tornado's ``send_error`` clears headers before ``write_error``, so headers such
as ``WWW-Authenticate`` and ``Retry-After`` travel on the exception and are
applied in ``JsonHandler.write_error``.
"""

from __future__ import annotations

from collections.abc import Mapping

from tornado.web import HTTPError

from backends.errors import AuthError, BackendUnavailable, InsufficientScope

REALM = "jotguard"


class ApiError(HTTPError):
    """An error answered as JSON ``{"error", "error_description"}`` with extra headers."""

    def __init__(
        self,
        status: int,
        error: str,
        description: str,
        *,
        headers: Mapping[str, str] | None = None,
        reason: str | None = None,
    ) -> None:
        # log_message never carries the token: descriptions are client-safe by contract.
        super().__init__(status, "%s: %s", error, description)
        self.error = error
        self.description = description
        self.headers = dict(headers or {})
        self.reason_label = reason or error


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def bearer_challenge(exc: AuthError) -> str:
    """The RFC 6750 ``WWW-Authenticate`` value for ``exc``."""
    params = [f'realm="{REALM}"']
    if exc.error is not None:
        params.append(f'error="{exc.error}"')
        params.append(f'error_description="{_quote(exc.description)}"')
    if isinstance(exc, InsufficientScope):
        params.append(f'scope="{_quote(" ".join(exc.required))}"')
    return "Bearer " + ", ".join(params)


def from_auth_error(exc: AuthError) -> ApiError:
    headers: dict[str, str] = {}
    if isinstance(exc, BackendUnavailable):
        headers["Retry-After"] = str(exc.retry_after)
    else:
        headers["WWW-Authenticate"] = bearer_challenge(exc)
    # A bare challenge has no RFC 6750 code; the JSON body still needs one.
    error = exc.error or "unauthorized"
    return ApiError(exc.status, error, exc.description, headers=headers, reason=exc.reason)
