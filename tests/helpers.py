"""Test-only routes and token forgeries shared by the operability tests."""

from __future__ import annotations

from typing import Any

from joserfc import jwt
from tornado.web import RequestHandler

from webapp.service.app import JotguardApplication, make_app, protected, web
from webapp.service.openapi import operation, text_response
from webapp.service.services import Services
from webapp.web.handler import AuthenticatedHandler, requires_any_scope, requires_scopes

# What a protected route of `jotguard serve` offers when no token came: Bearer, and DPoP
# with JOTGUARD_DPOP's default (allowed) and the default proof algorithms.
BARE_CHALLENGE = 'Bearer realm="jotguard", DPoP algs="ES256 EdDSA PS256 RS256 Ed25519 Ed448"'


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
    return make_app(services, [(path, handler, deps(services, handler)) for path, handler in extra])


def deps(services: Services, handler: type[RequestHandler]) -> dict[str, Any]:
    """What a test's handler takes: the authenticator too when it is a protected one."""
    if issubclass(handler, AuthenticatedHandler):
        return protected(services)
    return web(services)


def signed(services: Services, claims: dict[str, Any], **header: Any) -> str:
    """``claims`` signed with the test issuer's current key, under ``header`` overrides."""
    key = services.keyring.current
    protected = {"alg": key.alg, "kid": key.kid, "typ": "at+jwt", **header}
    return jwt.encode(protected, claims, key.key, algorithms=[key.alg])
