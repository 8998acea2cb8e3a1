"""Handlers and helpers shared by the rate-limit tests.

The real token, admin and demo-API handlers live on other branches; these
stand-ins declare the same policies (``rate_limit = "token"`` ...) so the
behaviour is tested through HTTP exactly as those routes will have it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import socket
from collections.abc import AsyncIterator
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port
from tornado.web import Application

from tests.clock import mid_minute_clock
from tests.helpers import deps
from webapp.config.settings import Settings
from webapp.handlers.basic import NotFoundHandler
from webapp.service.app import routes, web
from webapp.service.services import Services
from webapp.web.errors import ApiError
from webapp.web.handler import AuthenticatedHandler, JsonHandler
from webapp.web.ratelimit import client_key


class TokenEndpoint(JsonHandler):
    """A token endpoint as a library user writes one: client credentials in the body,
    checked in a worker thread while the check holds a failed-auth slot, then the token
    policy charged per verified client and address. ``secret_checks`` counts the checks."""

    rate_limit = "token"
    secret_checks = 0

    async def prepare(self) -> None:
        await self.limit_request(authenticating=True)

    async def post(self) -> None:
        client_id = self.get_body_argument("client_id", "")
        offered = self.get_body_argument("client_secret", "").encode()
        check = await self.client_check()
        try:
            TokenEndpoint.secret_checks += 1
            if not await asyncio.to_thread(hmac.compare_digest, offered, b"right"):
                await check.failed()
                raise ApiError(401, "invalid_client", "Client authentication failed")
        finally:
            check.release()
        await self.limit_verified(client_key(client_id, address=self.address_key))
        self.write({"access_token": "issued", "token_type": "Bearer"})


class AdminEndpoint(AuthenticatedHandler):
    rate_limit = "admin"

    def get(self) -> None:
        self.write({"revocations": []})


class ApiEndpoint(AuthenticatedHandler):
    """Like /api/*: anonymous reads allowed, path arguments do not open budgets."""

    rate_limit = "api"
    auth_required = False

    def get(self, item: str = "") -> None:
        self.write({"item": item})


TEST_ROUTES: list[tuple[str, Any]] = [
    (r"/limited/token", TokenEndpoint),
    (r"/limited/admin/?", AdminEndpoint),
    (r"/limited/api/?([^/]*)", ApiEndpoint),
]


def limited_app(services: Services) -> Application:
    # A plain Tornado Application, as a library user builds one: jotguard's own
    # application insists on documented, literal routes, which these stand-ins are not.
    return Application(
        [(path, handler, deps(services, handler)) for path, handler in TEST_ROUTES]
        + routes(services, {}),
        default_handler_class=NotFoundHandler,
        default_handler_args=web(services),
        xsrf_cookies=False,
    )


@contextlib.asynccontextmanager
async def running_instance(settings: Settings) -> AsyncIterator[tuple[str, Services]]:
    """A whole jotguard instance (its own services and limiter) on a free port."""
    services = await Services.start(settings, rate_limit_clock=mid_minute_clock())
    server = HTTPServer(limited_app(services))
    sock, port = bind_unused_port()
    server.add_sockets([sock])
    try:
        yield f"http://127.0.0.1:{port}", services
    finally:
        server.stop()
        await server.close_all_connections()
        await services.close()


def closed_port() -> int:
    """A local port nothing listens on (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
