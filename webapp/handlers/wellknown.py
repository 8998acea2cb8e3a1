"""Local issuer metadata: the JWKS and the discovery document."""

from __future__ import annotations

from typing import Any

from webapp.handler import JsonHandler
from webapp.openapi import json_response, operation
from webapp.services import Services

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


class JWKSHandler(WellKnownHandler):
    @operation(
        "The local issuer's public keys (current and retired, still accepted)",
        responses={
            200: {
                "description": "An RFC 7517 JWK Set; symmetric keys are never published.",
                "content": {"application/jwk-set+json": {"schema": _JWKS_SCHEMA}},
            }
        },
        tags=["issuer"],
    )
    def get(self) -> None:
        self.write(self.services.keyring.public_jwks())
        # After write(): writing a dict sets application/json.
        self.set_header("Content-Type", "application/jwk-set+json")


def discovery_document(services: Services) -> dict[str, Any]:
    issuer = services.settings.issuer_url
    return {
        "issuer": issuer,
        "jwks_uri": issuer + ".well-known/jwks.json",
        "id_token_signing_alg_values_supported": [services.keyring.alg],
        "token_endpoint_auth_signing_alg_values_supported": [services.keyring.alg],
    }


class DiscoveryHandler(WellKnownHandler):
    @operation(
        "The local issuer's metadata (OpenID Connect discovery / RFC 8414)",
        responses={200: json_response("Issuer metadata.", _DISCOVERY_SCHEMA)},
        tags=["issuer"],
    )
    def get(self) -> None:
        self.write(discovery_document(self.services))
