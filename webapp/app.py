"""The application factory: jotguard's route table and Tornado settings."""

from __future__ import annotations

import asyncio
from typing import Any

from tornado.http1connection import HTTP1Connection
from tornado.httputil import HTTPServerRequest
from tornado.web import Application, RequestHandler

from webapp.access import record_request
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
from webapp.handlers.token import TokenHandler
from webapp.handlers.wellknown import DiscoveryHandler, JWKSHandler
from webapp.openapi import build_document
from webapp.routing import app_routes, route_of, templates_by_handler
from webapp.services import Services


class JotguardApplication(Application):
    """Counts requests in flight so a shutdown can wait for them, and writes one
    access-log line per request (replacing Tornado's) with the route pattern it took.

    The OpenAPI document is built here from the route table, so a handler method
    without ``@operation`` fails at start-up, not in production.
    """

    in_flight = 0
    _idle: asyncio.Event | None = None

    def __init__(self, handlers: Any = None, **settings: Any) -> None:
        super().__init__(handlers, **settings)
        self.routes = app_routes(self)
        self._templates = templates_by_handler(self.routes)
        self.settings["openapi"] = build_document(self.routes)
        metrics = self.settings.get("metrics")
        if metrics is not None:
            metrics.in_flight.set_function(lambda: self.in_flight)

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is in flight; False if ``timeout`` passed first."""
        self._idle = asyncio.Event()
        if self.in_flight <= 0:
            return True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def get_handler_delegate(
        self, request: Any, target_class: Any, *args: Any, **kwargs: Any
    ) -> Any:
        self.in_flight += 1
        limit = self.settings.get("max_body_bytes")
        declared = declared_length(request)
        if limit is not None and declared is not None and declared > limit:
            if isinstance(request.connection, HTTP1Connection):
                # Else Tornado's own check refuses the length and closes under the client
                # before the 413 is read; raised, it discards the body while the 413 goes out.
                request.connection.set_max_body_size(declared)
            return super().get_handler_delegate(request, BodyTooLargeHandler)
        return super().get_handler_delegate(request, target_class, *args, **kwargs)

    def log_request(self, handler: RequestHandler) -> None:
        self.in_flight -= 1
        if self.in_flight <= 0 and self._idle is not None:
            self._idle.set()
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
