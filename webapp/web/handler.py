"""The base handlers library users inherit from, and the scope decorators.

``JsonHandler`` answers every error as JSON and never with a traceback.
``AuthenticatedHandler`` authenticates the bearer token in its async
``prepare()`` (``get_current_user`` cannot be a coroutine) and exposes the
verified :class:`~backends.principal.Principal` as ``self.current_user``.

Collaborators come the Tornado way, as keyword arguments of ``initialize()``: the
third element of a route tuple (``(r"/hello", HelloHandler, {"authenticator": a})``).
``AuthenticatedHandler`` needs an ``authenticator`` and nothing else; both handlers
take an optional ``rate_limits`` (:class:`~webapp.web.ratelimit.RequestLimits`) and
``cors`` (:class:`~webapp.web.cors.CorsPolicy`). A subclass with collaborators of its
own declares them, ``store: Store = collaborator()`` (see
:mod:`webapp.web.collaborators`): the one ``initialize`` sets them, and refuses a
keyword nobody declared or a required one left out with a ``TypeError``.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, NoReturn, TypeVar

from tornado.httputil import HTTPServerRequest
from tornado.log import app_log
from tornado.web import HTTPError, RequestHandler

from backends.auth import Authenticator
from backends.dpop import VerifiedProof
from backends.errors import (
    AuthError,
    BackendUnavailable,
    InsufficientScope,
    MalformedRequest,
    MissingCredentials,
)
from backends.principal import Principal
from webapp.web.collaborators import Collaborators, collaborator
from webapp.web.cors import CorsPolicy
from webapp.web.credentials import presented_token
from webapp.web.dpop import DPoPGate, bearer_refusal, route_schemes
from webapp.web.errors import (
    BEARER_ONLY,
    TokenSchemes,
    UnsupportedMediaType,
    error_answer,
    is_answer,
)
from webapp.web.methods import handler_methods
from webapp.web.ratelimit import CredentialCheck, PolicyRef, RequestLimits, is_failed_guess
from webapp.web.requestid import request_id


def require_json_media_type(request: HTTPServerRequest) -> None:
    """:raises UnsupportedMediaType: unless the body is declared ``application/json``."""
    media_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaType("Send the body as application/json")


class JsonHandler(Collaborators, RequestHandler):
    """Errors as JSON ``{"error", "error_description"}``, with the headers they carry.

    A method raises a :class:`~backends.errors.JotguardError` (answered as the table in
    :mod:`webapp.web.errors` says) or an :class:`~webapp.web.errors.ApiError`.

    Every response carries ``X-Request-ID`` and, given a ``cors`` policy, the CORS
    headers; both are set in ``set_default_headers`` because ``send_error`` clears
    headers and then calls it again.

    Rate limited by the policy ``rate_limit`` names (see :mod:`webapp.web.ratelimit`)
    in ``prepare``: a subclass that overrides ``prepare`` awaits ``super().prepare()``.
    """

    # What the access log reports besides status and timing; set while the request runs.
    auth_outcome: str | None = None
    error_code: str | None = None

    @functools.cached_property
    def request_id(self) -> str:
        return request_id(self.request)

    rate_limit: PolicyRef = "default"
    _rate_limit_headers: dict[str, str] = {}  # replaced per request, never mutated
    # Defaults at class level too: Tornado's __init__ calls clear() (and so
    # set_default_headers) before initialize() has set them.
    rate_limits: RequestLimits | None = collaborator(None)
    cors: CorsPolicy | None = collaborator(None)

    def set_collaborators(self, given: Mapping[str, object]) -> None:
        super().set_collaborators(given)
        if self.cors is not None:
            # The first clear() ran without the policy: cleared again, the CORS headers
            # take the place they have had in every response (before a subclass's own).
            self.clear()

    def prepare(self) -> Awaitable[None] | None:
        return self.limit_request(authenticating=False)

    async def limit_request(self, *, authenticating: bool) -> None:
        """Charge this request before authentication.

        :raises RateLimited: refused; :raises ApiError: 503, the limiter fails closed.
        """
        if self.rate_limits is not None:
            admission = await self.rate_limits.before_auth(
                self.request, self.rate_limit, authenticating=authenticating
            )
            self._set_rate_limit_headers(admission.headers)

    async def record_failed_authentication(self) -> None:
        """Count a failed check (a bad token) against the caller's address.

        Once the address's budget is spent it gets 429 before any further check.
        Successes are never counted. (Client-secret and password checks hold a slot
        while they run instead: ``RequestLimits.client_check``/``password_check``.)
        """
        if self.rate_limits is not None:
            await self.rate_limits.record_failed_auth(self.request)

    @property
    def address_key(self) -> str:
        """The client address's rate-limit key (the peer's address without rate limits)."""
        limits = self.rate_limits
        if limits is None:
            return f"ip:{self.request.remote_ip}"
        return limits.address_key(self.request)

    async def password_check(self, client_id: str, username: str) -> CredentialCheck:
        """Slots for checking ``username``'s password: the account's budget through this
        client (from any address), and the address's coarse flood guard."""
        limits = self.rate_limits
        if limits is None:
            return CredentialCheck(None, ())
        return await limits.password_check(self.request, client_id, username)

    async def client_check(self) -> CredentialCheck:
        """A slot of the address's failed-auth budget for one client-secret check."""
        limits = self.rate_limits
        if limits is None:
            return CredentialCheck(None, ())
        return await limits.client_check(self.request)

    async def limit_verified(self, key: str) -> None:
        """Charge the route's policy to a verified key (``RateLimited`` when refused)."""
        limits = self.rate_limits
        if limits is not None:
            self._set_rate_limit_headers(await limits.for_verified(self.rate_limit, key))

    def _set_rate_limit_headers(self, headers: dict[str, str]) -> None:
        if headers:
            self._rate_limit_headers = headers
            for name, value in headers.items():
                self.set_header(name, value)

    def set_default_headers(self) -> None:
        # Tornado's clear() sets a Server header before calling this: jotguard does not
        # advertise it.
        self.clear_header("Server")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("X-Request-ID", self.request_id)
        self._set_cors_headers()

    def _set_cors_headers(self) -> None:
        cors = self.cors
        if cors is not None:
            for name, value in cors.response_headers(self.request.headers.get("Origin")).items():
                self.set_header(name, value)

    def compute_etag(self) -> str | None:
        # Answers are ``no-store``: nobody revalidates them, so hashing each body buys nothing.
        return None

    def check_etag_header(self) -> bool:
        # Without If-None-Match nothing can match, and Tornado's check would still run a
        # regex over the absent header on every GET (1.7 µs of 1.9).
        return "If-None-Match" in self.request.headers and super().check_etag_header()

    def refuse_unsupported_method(self) -> None:
        """405 before any credential work: a method the route lacks is not an auth question."""
        method = self.request.method or ""
        if method != "OPTIONS" and method not in handler_methods(type(self)):
            raise HTTPError(405)

    def options(self, *args: Any, **kwargs: Any) -> None:
        """The route's methods, and a CORS preflight answer for allowed origins.

        Never authenticated: a browser sends no credentials with a preflight.
        """
        methods = [*handler_methods(type(self)), "OPTIONS"]
        self.set_header("Allow", ", ".join(methods))
        cors = self.cors
        if cors is not None:
            origin = self.request.headers.get("Origin")
            for name, value in cors.preflight_headers(origin, methods).items():
                self.set_header(name, value)
        self.set_status(204)

    def log_exception(
        self,
        typ: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # An answer is not a fault: the access-log line carries its status and error code,
        # so Tornado's extra line is left out.
        if is_answer(value):
            return
        # Tornado's own line carries the full URI, query string included.
        app_log.error(
            "uncaught exception in %s %s request_id=%s",
            self.request.method,
            self.request.path,
            self.request_id,
            exc_info=(typ, value, tb),  # type: ignore[arg-type]
        )

    def token_schemes(self) -> TokenSchemes:
        """The token schemes this route's challenges offer: Bearer, unless it takes DPoP."""
        return BEARER_ONLY

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        answer = error_answer(exc, status_code, self.token_schemes())
        if answer.status != status_code:
            self.set_status(answer.status)  # send_error said 500: not an HTTPError
        # send_error cleared the headers: an error answer still reports the quota.
        for name, value in self._rate_limit_headers.items():
            self.set_header(name, value)
        for name, value in answer.headers.items():
            self.set_header(name, value)
        if answer.status == 405:
            # RFC 9110 §15.5.6: a 405 lists the methods the resource does allow.
            self.set_header("Allow", ", ".join([*handler_methods(type(self)), "OPTIONS"]))
        self.error_code = answer.error
        self.finish(answer.body())

    def refuse(self, exc: AuthError | BackendUnavailable) -> NoReturn:
        """Raise ``exc``, the outcome of authenticating (or authorizing) this request,
        with its reason recorded for the access log and metrics."""
        self.auth_outcome = exc.reason
        raise exc


class AuthenticatedHandler(JsonHandler):
    """Requires a valid access token on every method except ``OPTIONS``.

    Set ``auth_required = False`` to let anonymous requests through while still
    refusing a bad token. The ``authenticator`` is the one collaborator it needs.

    Given a ``dpop`` gate (:class:`~webapp.web.dpop.DPoPGate`), tokens are taken as
    ``Authorization: DPoP`` with a proof too (RFC 9449), and required so where the gate
    says or ``dpop_required = True``; a token bound to a key (``cnf.jkt``) is refused
    without its proof, and without a gate altogether.
    """

    auth_required: bool = True
    dpop_required: bool = False
    current_user: Principal | None
    authenticator: Authenticator = collaborator()
    dpop: DPoPGate | None = collaborator(None)
    dpop_proof: VerifiedProof | None = None
    """The request's checked DPoP proof, when its token came as ``Authorization: DPoP``."""
    _presented_dpop = False

    def token_schemes(self) -> TokenSchemes:
        return route_schemes(
            self.dpop, dpop_required=self.dpop_required, presented_dpop=self._presented_dpop
        )

    async def prepare(self) -> None:
        if self.request.method == "OPTIONS":
            await self.limit_request(authenticating=False)
            return
        authenticator = self.authenticator
        gate = self.dpop
        try:
            self.refuse_unsupported_method()
            presented = presented_token(self.request, dpop=gate is not None)
        except (MalformedRequest, HTTPError) as exc:
            await self.limit_request(authenticating=False)
            if isinstance(exc, HTTPError):
                raise
            self.refuse(exc)
        if presented is None:
            await self.limit_request(authenticating=False)
            if self.auth_required:
                self.refuse(MissingCredentials())
            self.current_user = None
            return
        token, dpop = presented
        self._presented_dpop = dpop
        # A token verified before needs no verification work, so the guards that protect
        # that work (the preauth budget, the failed-auth lockout) are skipped: it is
        # counted against its user below like any success. Its DPoP proof is such work:
        # charged to the preauth flood guard, never refused by the lockout (which would
        # let a guesser lock out the good clients behind its address).
        known = authenticator.verified_before(token)
        if known is None:
            # Before any verification work: a flood of garbage tokens stops here.
            await self.limit_request(authenticating=True)
        elif dpop and self.rate_limits is not None:
            await self.rate_limits.before_proof(self.request, self.rate_limit)
        try:
            if known is None:
                principal = await authenticator.authenticate(token)
            else:
                await authenticator.check_revocation(known)
                principal = known
            # The proof only once the token is genuine and not revoked: only proofs bound
            # to a real token take room in the replay cache.
            if dpop:
                assert gate is not None  # presented_token gives DPoP only where it is taken
                self.dpop_proof = await gate.check_bound(self.request, token, principal)
            elif (
                principal.jkt is not None
                or self.dpop_required
                or (gate is not None and gate.refuses_bearer(principal.issuer))
            ):
                raise bearer_refusal(gate, principal)
            self.current_user = principal
            self.auth_outcome = "success"
        except (AuthError, BackendUnavailable) as exc:
            if known is not None and not dpop:
                # Refused after all (revoked, store down): a flood of it is still a flood.
                await self.limit_request(authenticating=True)
            if isinstance(exc, AuthError) and is_failed_guess(exc):
                await self.record_failed_authentication()
            self.refuse(exc)
        if self.rate_limits is not None:
            headers = await self.rate_limits.for_principal(self.rate_limit, principal)
            self._set_rate_limit_headers(headers)
        if self.dpop_proof is not None and gate is not None:
            nonce = gate.fresh_nonce(self.dpop_proof)
            if nonce is not None:
                self.set_header("DPoP-Nonce", nonce)

    @property
    def principal(self) -> Principal:
        """The verified caller; 401 when the request was anonymous (``auth_required = False``)."""
        if self.current_user is None:
            self.refuse(MissingCredentials())
        return self.current_user


Method = TypeVar("Method", bound=Callable[..., Awaitable[Any] | None])


def _scope_guard(required: tuple[str, ...], any_of: bool) -> Callable[[Method], Method]:
    if not required or any(not s or " " in s for s in required):
        raise ValueError("scopes must be non-empty strings without spaces")

    def decorate(method: Method) -> Method:
        @functools.wraps(method)
        def wrapper(self: AuthenticatedHandler, *args: Any, **kwargs: Any) -> Any:
            principal = self.principal
            allowed = (
                principal.has_any_scope(required) if any_of else principal.has_scopes(required)
            )
            if not allowed:
                self.refuse(InsufficientScope(required, any_of=any_of))
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
