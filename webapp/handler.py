"""The base handlers library users inherit from, and the scope decorators.

``JsonHandler`` answers every error as JSON and never with a traceback.
``AuthenticatedHandler`` authenticates the bearer token in its async
``prepare()`` (``get_current_user`` cannot be a coroutine) and exposes the
verified :class:`~backends.principal.Principal` as ``self.current_user``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any, TypeVar

from tornado.httputil import HTTPServerRequest
from tornado.web import HTTPError, RequestHandler

from backends.auth import Authenticator
from backends.errors import AuthError, InsufficientScope, MalformedRequest, MissingCredentials
from backends.principal import Principal
from webapp.errors import ApiError, from_auth_error
from webapp.ratelimit import PolicyRef, RequestLimits, is_failed_guess

# RFC 6750 §2.1 b64token.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")

_GENERIC_ERRORS = {
    400: "invalid_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    415: "unsupported_media_type",
}


def bearer_token(request: HTTPServerRequest) -> str | None:
    """The bearer token of ``request``, or None when it offers no bearer credentials.

    :raises MalformedRequest: two Authorization headers, an empty token or extra parts.
    """
    values = request.headers.get_list("Authorization")
    if not values:
        return None
    if len(values) > 1:
        raise MalformedRequest("Send exactly one Authorization header")
    parts = values[0].split()
    if not parts:
        raise MalformedRequest("The Authorization header is empty")
    if parts[0].lower() != "bearer":
        return None  # another scheme (Basic, ...) offers no bearer credentials
    if len(parts) != 2 or not _B64TOKEN.fullmatch(parts[1]):
        raise MalformedRequest("The Authorization header must be 'Bearer <token>'")
    return parts[1]


class JsonHandler(RequestHandler):
    """Errors as JSON ``{"error", "error_description"}``, with the headers they carry.

    Rate limited by the policy ``rate_limit`` names (see :mod:`webapp.ratelimit`)
    in ``prepare``: a subclass that overrides ``prepare`` awaits ``super().prepare()``.
    """

    rate_limit: PolicyRef = "default"
    _rate_limit_headers: dict[str, str] = {}  # replaced per request, never mutated
    _auth_attempt: str | None = None

    def prepare(self) -> Awaitable[None] | None:
        return self.limit_request(authenticating=False)

    @property
    def rate_limits(self) -> RequestLimits | None:
        limits: RequestLimits | None = self.settings.get("rate_limits")
        return limits

    async def limit_request(self, *, authenticating: bool) -> None:
        """Charge this request before authentication (429/503 ``ApiError`` when refused)."""
        if self.rate_limits is not None:
            admission = await self.rate_limits.before_auth(
                self.request, self.rate_limit, authenticating=authenticating
            )
            self._auth_attempt = admission.attempt
            self._set_rate_limit_headers(admission.headers)

    def end_auth_attempt(self) -> None:
        """The credential check is over: free its slot of the failed-auth budget.

        Called after authentication and again in ``on_finish`` (a no-op by then
        unless the handler checked credentials itself, as a token endpoint does).
        """
        if self._auth_attempt is not None and self.rate_limits is not None:
            self.rate_limits.release(self._auth_attempt)
        self._auth_attempt = None

    def on_finish(self) -> None:
        self.end_auth_attempt()
        super().on_finish()

    async def record_failed_authentication(self) -> None:
        """Count a failed client or password check against the caller's IP.

        Token endpoints call this; once the IP's budget is spent it gets 429
        before any further check. Successes are never counted.
        """
        if self.rate_limits is not None:
            await self.rate_limits.record_failed_auth(self.request)

    def _set_rate_limit_headers(self, headers: dict[str, str]) -> None:
        if headers:
            self._rate_limit_headers = headers
            for name, value in headers.items():
                self.set_header(name, value)

    def set_default_headers(self) -> None:
        self.clear_header("Server")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        # send_error cleared the headers: an error answer still reports the quota.
        for name, value in self._rate_limit_headers.items():
            self.set_header(name, value)
        if isinstance(exc, ApiError):
            for name, value in exc.headers.items():
                self.set_header(name, value)
            body = {"error": exc.error, "error_description": exc.description}
        elif status_code < 500:
            reason = exc.reason if isinstance(exc, HTTPError) else None
            body = {
                "error": _GENERIC_ERRORS.get(status_code, "invalid_request"),
                "error_description": reason or HTTPStatus(status_code).phrase,
            }
        else:
            body = {"error": "server_error", "error_description": "Internal server error"}
        self.finish(body)

    def fail(self, exc: AuthError) -> ApiError:
        """The HTTP form of a backend's ``AuthError``, to ``raise``."""
        return from_auth_error(exc)


class AuthenticatedHandler(JsonHandler):
    """Requires a valid bearer token on every method except ``OPTIONS``.

    Set ``auth_required = False`` to let anonymous requests through while still
    refusing a bad token. The authenticator comes from the application setting
    ``authenticator``.
    """

    auth_required: bool = True
    current_user: Principal | None

    async def prepare(self) -> None:
        if self.request.method == "OPTIONS":
            await self.limit_request(authenticating=False)
            return
        authenticator: Authenticator = self.settings["authenticator"]
        try:
            token = bearer_token(self.request)
        except MalformedRequest as exc:
            await self.limit_request(authenticating=False)
            raise self.fail(exc) from None
        # Before any verification work: a flood of garbage tokens stops here.
        await self.limit_request(authenticating=token is not None)
        try:
            if token is None:
                if self.auth_required:
                    raise MissingCredentials()
                self.current_user = None
                return
            self.current_user = await authenticator.authenticate(token)
        except AuthError as exc:
            if is_failed_guess(exc):
                await self.record_failed_authentication()
            raise self.fail(exc) from None
        finally:
            self.end_auth_attempt()
        if self.rate_limits is not None:
            headers = await self.rate_limits.for_principal(self.rate_limit, self.current_user)
            self._set_rate_limit_headers(headers)

    def require_principal(self) -> Principal:
        if self.current_user is None:
            raise self.fail(MissingCredentials())
        return self.current_user


Method = TypeVar("Method", bound=Callable[..., Awaitable[Any] | None])


def _scope_guard(required: tuple[str, ...], any_of: bool) -> Callable[[Method], Method]:
    if not required or any(not s or " " in s for s in required):
        raise ValueError("scopes must be non-empty strings without spaces")

    def decorate(method: Method) -> Method:
        @functools.wraps(method)
        def wrapper(self: AuthenticatedHandler, *args: Any, **kwargs: Any) -> Any:
            principal = self.require_principal()
            allowed = (
                principal.has_any_scope(required) if any_of else principal.has_scopes(required)
            )
            if not allowed:
                raise self.fail(InsufficientScope(required, any_of=any_of))
            return method(self, *args, **kwargs)

        wrapper.required_scopes = required  # type: ignore[attr-defined]
        wrapper.any_scope = any_of  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def requires_scopes(*scopes: str) -> Callable[[Method], Method]:
    """The handler method needs every one of ``scopes`` (403 ``insufficient_scope``)."""
    return _scope_guard(scopes, any_of=False)


def requires_any_scope(*scopes: str) -> Callable[[Method], Method]:
    """The handler method needs at least one of ``scopes``."""
    return _scope_guard(scopes, any_of=True)
