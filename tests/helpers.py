"""Test-only routes and token forgeries shared by the operability tests."""

from __future__ import annotations

from typing import Any

from joserfc import jwt
from tornado.web import RequestHandler

from webapp.handlers.basic import NotFoundHandler
from webapp.service.app import JotguardApplication, metrics_routes, routes
from webapp.service.openapi import operation, text_response
from webapp.service.services import Services
from webapp.web.handler import AuthenticatedHandler, requires_any_scope, requires_scopes


class ScopedHandler(AuthenticatedHandler):
    @operation("Needs read:notes", responses={200: text_response("Read.")})
    @requires_scopes("read:notes")
    def get(self) -> None:
        self.write("read")

    @requires_any_scope("write:notes", "admin")
    @operation("Needs write:notes or admin", responses={200: text_response("Written.")})
    def post(self) -> None:
        self.write("written")


def app_with(services: Services, *extra: tuple[str, type[RequestHandler]]) -> JotguardApplication:
    """The service's application with ``extra`` routes in front of its own."""
    return JotguardApplication(
        [*extra, *routes(), *metrics_routes(services)],
        default_handler_class=NotFoundHandler,
        xsrf_cookies=False,
        **services.tornado_settings(),
    )


def signed(services: Services, claims: dict[str, Any], **header: Any) -> str:
    """``claims`` signed with the test issuer's current key, under ``header`` overrides."""
    key = services.keyring.current
    protected = {"alg": key.alg, "kid": key.kid, "typ": "at+jwt", **header}
    return jwt.encode(protected, claims, key.key, algorithms=[key.alg])
