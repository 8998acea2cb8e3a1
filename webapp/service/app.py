"""The application factory: jotguard's route table, each route given what it uses.

Handlers get their collaborators as ``initialize()`` keywords, the third element of a
route tuple (see :mod:`webapp.web.handler`): :func:`web` for every JSON route (rate
limits, CORS), :func:`protected` for an authenticated one, plus each route's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any

from tornado import httputil
from tornado.http1connection import HTTP1Connection
from tornado.httputil import HTTPServerRequest
from tornado.web import Application, RequestHandler

from webapp.handlers.admin import AuditHandler, RevocationHandler, RevocationsHandler
from webapp.handlers.basic import (
    BodyTooLargeHandler,
    HealthHandler,
    NotFoundHandler,
    ProtectedHandler,
    UnprotectedHandler,
)
from webapp.handlers.catchphrases import CatchphraseHandler, CatchphrasesHandler
from webapp.handlers.get_token import GetTokenHandler
from webapp.handlers.oauth import IntrospectHandler, RevokeHandler
from webapp.handlers.ops import MetricsHandler, OpenAPIHandler, ReadinessHandler
from webapp.handlers.registry import registry_routes
from webapp.handlers.token import TokenHandler
from webapp.handlers.wellknown import DiscoveryHandler, JWKSHandler, discovery_document
from webapp.service.access import record_request
from webapp.service.metrics import Metrics
from webapp.service.openapi import DPoPMode, build_document
from webapp.service.revoking import Revoker
from webapp.service.routing import app_routes, route_of, templates_by_handler
from webapp.service.services import Services
from webapp.web.collaborators import check_route

Route = tuple[str, type[RequestHandler], dict[str, Any]]


class _CountedUntilLost(httputil.HTTPMessageDelegate):
    """Passes a request's message on, and tells the application when its connection is
    lost before the message was complete: no handler will run or log it then (Tornado
    builds the handler of a body it buffers only once the body is in)."""

    __slots__ = ("_app", "_delegate", "_request")

    def __init__(
        self,
        app: JotguardApplication,
        request: HTTPServerRequest,
        delegate: httputil.HTTPMessageDelegate,
    ) -> None:
        self._app = app
        self._request = request
        self._delegate = delegate

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        return self._delegate.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        return self._delegate.data_received(chunk)

    def finish(self) -> None:
        self._delegate.finish()

    def on_connection_close(self) -> None:
        # Documented as called only when the connection closes before finish().
        self._delegate.on_connection_close()
        self._app.request_done(self._request)


class JotguardApplication(Application):
    """Counts requests in flight so a shutdown can wait for them, and writes one
    access-log line per request (replacing Tornado's) with the route pattern it took.

    A request is in flight from its headers until its handler is logged, or until its
    connection is lost first (an aborted upload never reaches a handler).

    The OpenAPI document (``openapi``) is built here from the route table, so a handler
    method without ``@operation`` fails at start-up, not in production.

    A declared body over ``max_body_bytes`` is answered by ``BodyTooLargeHandler``,
    given ``web`` (the keywords of every JSON route), as the default handler is.
    ``dpop`` (JOTGUARD_DPOP) says which token schemes the document gives protected
    routes: it must be what their ``dpop`` gate does.

    Every route's keywords are checked against its handler's collaborators here
    (:func:`~webapp.web.collaborators.check_route`): a route that gives one too many or
    one too few fails at start-up with a ``TypeError``, not on its first request.
    """

    _idle: asyncio.Event | None = None

    def __init__(
        self,
        handlers: Any = None,
        *,
        metrics: Metrics | None = None,
        max_body_bytes: int | None = None,
        web: dict[str, Any] | None = None,
        dpop: DPoPMode = "off",
        **settings: Any,
    ) -> None:
        # Requests, not a count: a request lost after its handler answered is let go
        # twice (log_request, then the lost connection) and must count once.
        self._in_flight: set[HTTPServerRequest] = set()
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self._too_large = {**(web or {}), "max_body_bytes": max_body_bytes}
        super().__init__(handlers, **settings)
        self.routes = app_routes(self)
        if max_body_bytes is not None:
            check_route(BodyTooLargeHandler, self._too_large)
        if self.settings.get("default_handler_class") is not None:
            check_route(
                self.settings["default_handler_class"],
                self.settings.get("default_handler_args") or {},
            )
        self._templates = templates_by_handler(self.routes)
        self.openapi = build_document(self.routes, dpop=dpop)
        if metrics is not None:
            metrics.in_flight.set_function(lambda: self.in_flight)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def request_done(self, request: HTTPServerRequest) -> None:
        """``request`` is no longer in flight (answered, or its connection lost)."""
        self._in_flight.discard(request)
        if not self._in_flight and self._idle is not None:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is in flight; False if ``timeout`` passed first."""
        self._idle = asyncio.Event()
        if not self._in_flight:
            return True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def get_handler_delegate(
        self, request: Any, target_class: Any, *args: Any, **kwargs: Any
    ) -> Any:
        self._in_flight.add(request)
        limit = self.max_body_bytes
        declared = declared_length(request)
        if limit is not None and declared is not None and declared > limit:
            if isinstance(request.connection, HTTP1Connection):
                # Else Tornado's own check refuses the length and closes under the client
                # before the 413 is read; raised, it discards the body while the 413 goes out.
                request.connection.set_max_body_size(declared)
            delegate = super().get_handler_delegate(request, BodyTooLargeHandler, self._too_large)
        else:
            delegate = super().get_handler_delegate(request, target_class, *args, **kwargs)
        return _CountedUntilLost(self, request, delegate)

    def log_request(self, handler: RequestHandler) -> None:
        self.request_done(handler.request)
        route = self._templates.get(type(handler)) or route_of(self.routes, handler.request)
        record_request(handler, route, self.metrics)


def declared_length(request: HTTPServerRequest) -> int | None:
    """The request's Content-Length when it is one plain number (Tornado refuses the rest)."""
    # get_list: get() raises and catches a KeyError inside when the header is absent.
    values = request.headers.get_list("Content-Length")
    if len(values) != 1 or not (values[0].isascii() and values[0].isdigit()):
        return None
    return int(values[0])


def web(services: Services) -> dict[str, Any]:
    """What every JSON route takes: the rate limits and the CORS policy."""
    return {"rate_limits": services.rate_limits, "cors": services.cors}


def protected(services: Services) -> dict[str, Any]:
    """What an ``AuthenticatedHandler`` route takes: :func:`web`, the authenticator and
    the DPoP gate (None when JOTGUARD_DPOP is off)."""
    return {**web(services), "authenticator": services.authenticator, "dpop": services.dpop}


def routes(services: Services, openapi: dict[str, Any]) -> list[Route]:
    """The service's routes; ``openapi`` is filled with the document once the
    application has built it from them."""
    settings = services.settings
    issuance = services.issuance
    plain = web(services)
    auth = protected(services)
    admin = {
        **auth,
        "admin_scope": settings.admin_scope,
        "admin_issuers": settings.admin_issuer_urls,
    }
    revocations = {**admin, "revocations": services.revocations}
    revoker = Revoker(settings, services.revocations, services.authenticator, issuance)
    oauth = {**plain, "tokens": issuance.tokens}
    token_endpoint = {
        **oauth,
        "authenticator": services.authenticator,
        "revocations": services.revocations,
    }
    discovery = {
        **plain,
        "document": discovery_document(
            settings.issuer_url,
            admin_scope=settings.admin_scope,
            alg=services.keyring.alg,
            dpop_algs=services.dpop.verifier.policy.advertised if services.dpop else None,
        ),
    }
    catchphrases = {**auth, "catchphrases": issuance.catchphrases}
    return [
        (r"/test", UnprotectedHandler, plain),
        (r"/test-auth", ProtectedHandler, auth),
        (r"/healthz", HealthHandler, plain),
        (r"/\.well-known/jwks\.json", JWKSHandler, {**plain, "keyring": services.keyring}),
        (r"/\.well-known/openid-configuration", DiscoveryHandler, discovery),
        (r"/\.well-known/oauth-authorization-server", DiscoveryHandler, discovery),
        (
            r"/get-token",
            GetTokenHandler,
            {
                **plain,
                "token_exchange": services.token_exchange,
                "get_token_local": issuance.get_token_local,
            },
        ),
        (r"/readyz", ReadinessHandler, {**plain, "readiness": services.readiness}),
        (r"/openapi\.json", OpenAPIHandler, {**plain, "document": openapi}),
        # -- revocation --
        (r"/admin/revocations", RevocationsHandler, {**revocations, "revoker": revoker}),
        (r"/admin/revocations/(?P<entry_id>[A-Za-z0-9_-]{1,64})", RevocationHandler, revocations),
        (r"/admin/audit", AuditHandler, revocations),
        *[(path, handler, {**admin, "issuance": issuance}) for path, handler in registry_routes()],
        (r"/oauth/revoke", RevokeHandler, token_endpoint),
        (
            r"/oauth/introspect",
            IntrospectHandler,
            {**token_endpoint, "admin_scope": settings.admin_scope},
        ),
        # -- token issuance --
        (
            r"/oauth/token",
            TokenHandler,
            {**oauth, "metrics": services.metrics, "dpop": services.dpop},
        ),
        (r"/api/catchphrases", CatchphrasesHandler, catchphrases),
        (r"/api/catchphrases/(?P<item_id>[^/]{1,64})", CatchphraseHandler, catchphrases),
    ]


def metrics_routes(services: Services) -> list[Route]:
    """``/metrics`` on the service port, when JOTGUARD_METRICS=same."""
    if services.settings.metrics != "same":
        return []
    return [(r"/metrics", MetricsHandler, {**web(services), "metrics": services.metrics})]


def make_app(services: Services, extra: Iterable[Route] = ()) -> JotguardApplication:
    """The service's application, with ``extra`` routes (a test's, say) in front of its own."""
    openapi: dict[str, Any] = {}
    app = JotguardApplication(
        [*extra, *routes(services, openapi), *metrics_routes(services)],
        default_handler_class=NotFoundHandler,
        default_handler_args=web(services),
        xsrf_cookies=False,
        metrics=services.metrics,
        max_body_bytes=services.settings.max_body_bytes,
        web=web(services),
        dpop=dpop_mode(services),
    )
    openapi.update(app.openapi)
    return app


def dpop_mode(services: Services) -> DPoPMode:
    """JOTGUARD_DPOP as the gate handlers get applies it."""
    gate = services.dpop
    if gate is None:
        return "off"
    return "required" if gate.required else "allowed"


def make_metrics_app(services: Services) -> Application:
    """``/metrics`` alone, for a listener of its own (JOTGUARD_METRICS=<port>); not logged."""
    return Application(
        [(r"/metrics", MetricsHandler, {**web(services), "metrics": services.metrics})],
        default_handler_class=NotFoundHandler,
        default_handler_args=web(services),
        log_function=lambda handler: None,
    )
