"""The application factory: jotguard's route table and Tornado settings."""

from __future__ import annotations

import asyncio
from typing import Any

from tornado.web import Application, RequestHandler

from webapp.handlers.admin import AuditHandler, RevocationHandler, RevocationsHandler
from webapp.handlers.basic import (
    HealthHandler,
    NotFoundHandler,
    ProtectedHandler,
    UnprotectedHandler,
)
from webapp.handlers.catchphrases import CatchphraseHandler, CatchphrasesHandler
from webapp.handlers.get_token_local import LocalGetTokenHandler
from webapp.handlers.oauth import IntrospectHandler, RevokeHandler
from webapp.handlers.token import TokenHandler
from webapp.handlers.wellknown import DiscoveryHandler, JWKSHandler
from webapp.services import Services


class JotguardApplication(Application):
    """Counts requests in flight so a shutdown can wait for them."""

    in_flight = 0
    _idle: asyncio.Event | None = None

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
        return super().get_handler_delegate(request, target_class, *args, **kwargs)

    def log_request(self, handler: RequestHandler) -> None:
        self.in_flight -= 1
        if self.in_flight <= 0 and self._idle is not None:
            self._idle.set()
        super().log_request(handler)


def routes() -> list[tuple[str, type[RequestHandler]]]:
    return [
        (r"/test", UnprotectedHandler),
        (r"/test-auth", ProtectedHandler),
        (r"/healthz", HealthHandler),
        (r"/\.well-known/jwks\.json", JWKSHandler),
        (r"/\.well-known/openid-configuration", DiscoveryHandler),
        (r"/\.well-known/oauth-authorization-server", DiscoveryHandler),
        # -- revocation --
        (r"/admin/revocations", RevocationsHandler),
        (r"/admin/revocations/([A-Za-z0-9_-]{1,64})", RevocationHandler),
        (r"/admin/audit", AuditHandler),
        (r"/oauth/revoke", RevokeHandler),
        (r"/oauth/introspect", IntrospectHandler),
        # -- token issuance --
        (r"/oauth/token", TokenHandler),
        (r"/get-token", LocalGetTokenHandler),
        (r"/api/catchphrases", CatchphrasesHandler),
        (r"/api/catchphrases/([^/]+)", CatchphraseHandler),
    ]


def make_app(services: Services) -> JotguardApplication:
    return JotguardApplication(
        routes(),
        default_handler_class=NotFoundHandler,
        xsrf_cookies=False,
        **services.tornado_settings(),
    )
