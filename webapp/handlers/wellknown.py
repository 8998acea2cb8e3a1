"""Local issuer metadata: the JWKS and the discovery document."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tornado.web import RequestHandler

from backends.issuance.base import GRANT_TYPES
from backends.keys.keyring import Keyring
from webapp.handlers.catchphrases import DEMO_SCOPES
from webapp.handlers.oauth_endpoint import CLIENT_AUTH_METHODS
from webapp.service.openapi import json_response, operation
from webapp.web.collaborators import collaborator
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
    def set_default_headers(self) -> None:
        super().set_default_headers()
        # Short caching: a rotation must reach verifiers within a minute.
        self.set_header("Cache-Control", "public, max-age=60")

    def compute_etag(self) -> str | None:
        # Cacheable documents: a verifier may revalidate them with If-None-Match.
        return RequestHandler.compute_etag(self)


class JWKSHandler(WellKnownHandler):
    keyring: Keyring = collaborator()

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
        await self.keyring.reload_if_changed()
        self.write(self.keyring.public_jwks())
        # After write(): writing a dict sets application/json.
        self.set_header("Content-Type", "application/jwk-set+json")


def issuance_metadata(issuer: str, admin_scope: str) -> dict[str, Any]:
    """RFC 8414 fields of the token, revocation and introspection endpoints."""
    auth_methods = list(CLIENT_AUTH_METHODS)
    return {
        "token_endpoint": issuer + "oauth/token",
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint": issuer + "oauth/revoke",
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint": issuer + "oauth/introspect",
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "grant_types_supported": list(GRANT_TYPES),
        "scopes_supported": [admin_scope, *DEMO_SCOPES],
    }


def discovery_document(
    issuer: str, *, admin_scope: str, alg: str, dpop_algs: Sequence[str] | None = None
) -> dict[str, Any]:
    """The metadata of the local issuer ``issuer`` (its URL, ending in ``/``).

    ``dpop_algs``: the proof algorithms the token endpoint accepts (RFC 9449 §5.1);
    None when DPoP is off, and the field is left out.
    """
    document = {
        "issuer": issuer,
        "jwks_uri": issuer + ".well-known/jwks.json",
        "id_token_signing_alg_values_supported": [alg],
        "token_endpoint_auth_signing_alg_values_supported": [alg],
        **issuance_metadata(issuer, admin_scope),
    }
    if dpop_algs is not None:
        document["dpop_signing_alg_values_supported"] = list(dpop_algs)
    return document


class DiscoveryHandler(WellKnownHandler):
    document: dict[str, Any] = collaborator()  # fixed once the keyring's algorithm is

    @operation(
        "The local issuer's metadata (OpenID Connect discovery / RFC 8414)",
        responses={200: json_response("Issuer metadata.", _DISCOVERY_SCHEMA)},
        tags=["issuer"],
    )
    def get(self) -> None:
        self.write(self.document)
