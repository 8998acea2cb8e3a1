"""Local issuer metadata: the JWKS and the discovery document."""

from __future__ import annotations

from typing import Any

from webapp.handler import JsonHandler
from webapp.services import Services


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
    def get(self) -> None:
        self.set_header("Content-Type", "application/jwk-set+json")
        self.write(self.services.keyring.public_jwks())


def discovery_document(services: Services) -> dict[str, Any]:
    issuer = services.settings.issuer_url
    return {
        "issuer": issuer,
        "jwks_uri": issuer + ".well-known/jwks.json",
        "id_token_signing_alg_values_supported": [services.keyring.alg],
        "token_endpoint_auth_signing_alg_values_supported": [services.keyring.alg],
    }


class DiscoveryHandler(WellKnownHandler):
    def get(self) -> None:
        self.write(discovery_document(self.services))
