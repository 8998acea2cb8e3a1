"""DPoP through HTTP for the resource tests: bound tokens of the local issuer, proofs for
the test server's URLs, and what a refusal must look like."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tornado.httpclient import HTTPResponse

from backends.dpop import jwk_thumbprint, make_proof
from backends.keys import JoseKey
from webapp.service.services import Services

ALGS = "ES256 EdDSA PS256 RS256 Ed25519 Ed448"  # the default policy's algs=


def bound_token(services: Services, key: JoseKey, subject: str = "alice", **kwargs: Any) -> str:
    """A local-issuer token bound to ``key`` (``cnf.jkt``), as the token endpoint issues them."""
    claims = services.issuer.claims_for(subject, **kwargs)
    claims["cnf"] = {"jkt": jwk_thumbprint(key)}
    return services.issuer.sign(claims).token


def dpop_headers(proof: str | None, token: str, **extra: str) -> dict[str, str]:
    headers = {"Authorization": f"DPoP {token}", **extra}
    if proof is not None:
        headers["DPoP"] = proof
    return headers


class DPoPClient:
    """``await client.get("/test-auth", token)`` with a fresh proof by ``key`` each time."""

    def __init__(self, fetch: Callable[..., Any], base_url: str, key: JoseKey) -> None:
        self.fetch = fetch
        self.base_url = base_url
        self.key = key

    def proof(self, path: str, token: str, *, method: str = "GET", **kwargs: Any) -> str:
        return make_proof(self.key, method, self.base_url + path, access_token=token, **kwargs)

    async def send(
        self, path: str, token: str, *, proof: str | None = None, method: str = "GET", **kwargs: Any
    ) -> HTTPResponse:
        """``proof`` defaults to a fresh, correct one; ``nonce`` goes into it."""
        nonce = kwargs.pop("nonce", None)
        if proof is None:
            proof = self.proof(path.partition("?")[0], token, method=method, nonce=nonce)
        headers = dpop_headers(proof, token, **kwargs.pop("headers", {}))
        response: HTTPResponse = await self.fetch(path, method=method, headers=headers, **kwargs)
        return response


def refused_with(response: HTTPResponse, error: str, *, status: int = 401) -> str:
    """Assert a DPoP refusal: its status, JSON ``error`` and ``DPoP error=...`` challenge
    with the configured ``algs``; returns the description."""
    assert response.code == status, (response.code, response.body)
    body = json.loads(response.body)
    assert body["error"] == error
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith(f'DPoP error="{error}", error_description="'), challenge
    assert challenge.endswith(f'algs="{ALGS}"'), challenge
    return str(body["error_description"])
