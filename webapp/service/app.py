"""The application factory: jotguard's route table and Tornado settings."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
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
from webapp.handlers.wellknown import DiscoveryHandler, JWKSHandler
from webapp.service.access import record_request
from webapp.service.openapi import build_document
from webapp.service.routing import app_routes, route_of, templates_by_handler
from webapp.service.services import Services


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

    The OpenAPI document is built here from the route table, so a handler method
    without ``@operation`` fails at start-up, not in production.
    """

    _idle: asyncio.Event | None = None

    def __init__(self, handlers: Any = None, **settings: Any) -> None:
        # Requests, not a count: a request lost after its handler answered is let go
        # twice (log_request, then the lost connection) and must count once.
        self._in_flight: set[HTTPServerRequest] = set()
        super().__init__(handlers, **settings)
        self.routes = app_routes(self)
        self._templates = templates_by_handler(self.routes)
        self.settings["openapi"] = build_document(self.routes)
        metrics = self.settings.get("metrics")
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
        limit = self.settings.get("max_body_bytes")
        declared = declared_length(request)
        if limit is not None and declared is not None and declared > limit:
            if isinstance(request.connection, HTTP1Connection):
                # Else Tornado's own check refuses the length and closes under the client
                # before the 413 is read; raised, it discards the body while the 413 goes out.
                request.connection.set_max_body_size(declared)
            delegate = super().get_handler_delegate(request, BodyTooLargeHandler)
        else:
            delegate = super().get_handler_delegate(request, target_class, *args, **kwargs)
        return _CountedUntilLost(self, request, delegate)

    def log_request(self, handler: RequestHandler) -> None:
        self.request_done(handler.request)
        route = self._templates.get(type(handler)) or route_of(self.routes, handler.request)
        record_request(handler, route, self.settings.get("metrics"))


def declared_length(request: HTTPServerRequest) -> int | None:
    """The request's Content-Length when it is one plain number (Tornado refuses the rest)."""
    # get_list: get() raises and catches a KeyError inside when the header is absent.
    values = request.headers.get_list("Content-Length")
    if len(values) != 1 or not (values[0].isascii() and values[0].isdigit()):
        return None
    return int(values[0])


def routes() -> list[tuple[str, type[RequestHandler]]]:
    return [
        (r"/test", UnprotectedHandler),
        (r"/test-auth", ProtectedHandler),
        (r"/healthz", HealthHandler),
        (r"/\.well-known/jwks\.json", JWKSHandler),
        (r"/\.well-known/openid-configuration", DiscoveryHandler),
        (r"/\.well-known/oauth-authorization-server", DiscoveryHandler),
        (r"/get-token", GetTokenHandler),
        (r"/readyz", ReadinessHandler),
        (r"/openapi\.json", OpenAPIHandler),
        # -- revocation --
        (r"/admin/revocations", RevocationsHandler),
        (r"/admin/revocations/(?P<entry_id>[A-Za-z0-9_-]{1,64})", RevocationHandler),
        (r"/admin/audit", AuditHandler),
        *registry_routes(),
        (r"/oauth/revoke", RevokeHandler),
        (r"/oauth/introspect", IntrospectHandler),
        # -- token issuance --
        (r"/oauth/token", TokenHandler),
        (r"/api/catchphrases", CatchphrasesHandler),
        (r"/api/catchphrases/(?P<item_id>[^/]{1,64})", CatchphraseHandler),
    ]


def metrics_routes(services: Services) -> list[tuple[str, type[RequestHandler]]]:
    """``/metrics`` on the service port, when JOTGUARD_METRICS=same."""
    return [(r"/metrics", MetricsHandler)] if services.settings.metrics == "same" else []


def make_app(services: Services) -> JotguardApplication:
    return JotguardApplication(
        routes() + metrics_routes(services),
        default_handler_class=NotFoundHandler,
        xsrf_cookies=False,
        **services.tornado_settings(),
    )


def make_metrics_app(services: Services) -> Application:
    """``/metrics`` alone, for a listener of its own (JOTGUARD_METRICS=<port>); not logged."""
    return Application(
        [(r"/metrics", MetricsHandler)],
        default_handler_class=NotFoundHandler,
        log_function=lambda handler: None,
        **services.tornado_settings(),
    )
