"""Local issuer metadata: the JWKS and the discovery document."""

from __future__ import annotations

from typing import Any

from tornado.web import RequestHandler

from backends.issuance.base import GRANT_TYPES
from webapp.handlers.catchphrases import DEMO_SCOPES
from webapp.handlers.oauth_endpoint import CLIENT_AUTH_METHODS
from webapp.service.openapi import json_response, operation
from webapp.service.services import Services
from webapp.web.handler import JsonHandler

_JWKS_SCHEMA = {
    "type": "object",
    "required": ["keys"],
    "properties": {
        "keys": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["kty", "kid", "alg", "use"],
                "properties": {
                    "kty": {"type": "string"},
                    "kid": {"type": "string"},
                    "alg": {"type": "string"},
                    "use": {"const": "sig"},
                },
            },
        }
    },
}

_DISCOVERY_SCHEMA = {
    "type": "object",
    "required": ["issuer", "jwks_uri"],
    "properties": {
        "issuer": {"type": "string", "format": "uri"},
        "jwks_uri": {"type": "string", "format": "uri"},
    },
}


class WellKnownHandler(JsonHandler):
    @property
    def services(self) -> Services:
        services: Services = self.settings["services"]
        return services

    def set_default_headers(self) -> None:
        super().set_default_headers()
        # Short caching: a rotation must reach verifiers within a minute.
        self.set_header("Cache-Control", "public, max-age=60")

    def compute_etag(self) -> str | None:
        # Cacheable documents: a verifier may revalidate them with If-None-Match.
        return RequestHandler.compute_etag(self)


class JWKSHandler(WellKnownHandler):
    @operation(
        "The local issuer's public keys: next (signs soon), current and retired (accepted)",
        responses={
            200: {
                "description": "An RFC 7517 JWK Set; symmetric keys are never published.",
                "content": {"application/jwk-set+json": {"schema": _JWKS_SCHEMA}},
            }
        },
        tags=["issuer"],
    )
    async def get(self) -> None:
        # A stat: a key `jotguard keys rotate` just published is listed at once.
        await self.services.keyring.reload_if_changed()
        self.write(self.services.keyring.public_jwks())
        # After write(): writing a dict sets application/json.
        self.set_header("Content-Type", "application/jwk-set+json")


def issuance_metadata(services: Services) -> dict[str, Any]:
    """RFC 8414 fields of the token, revocation and introspection endpoints."""
    issuer = services.settings.issuer_url
    auth_methods = list(CLIENT_AUTH_METHODS)
    return {
        "token_endpoint": issuer + "oauth/token",
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint": issuer + "oauth/revoke",
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint": issuer + "oauth/introspect",
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "grant_types_supported": list(GRANT_TYPES),
        "scopes_supported": [services.settings.admin_scope, *DEMO_SCOPES],
    }


def discovery_document(services: Services) -> dict[str, Any]:
    issuer = services.settings.issuer_url
    return {
        "issuer": issuer,
        "jwks_uri": issuer + ".well-known/jwks.json",
        "id_token_signing_alg_values_supported": [services.keyring.alg],
        "token_endpoint_auth_signing_alg_values_supported": [services.keyring.alg],
        **issuance_metadata(services),
    }


class DiscoveryHandler(WellKnownHandler):
    @operation(
        "The local issuer's metadata (OpenID Connect discovery / RFC 8414)",
        responses={200: json_response("Issuer metadata.", _DISCOVERY_SCHEMA)},
        tags=["issuer"],
    )
    def get(self) -> None:
        self.write(discovery_document(self.services))
