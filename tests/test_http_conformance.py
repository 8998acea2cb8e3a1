"""What the schemathesis run (tox -e fuzz) found, pinned in the normal suite."""

from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize(
    ("path", "allow"), [("/test", "GET, OPTIONS"), ("/healthz", "GET, OPTIONS")]
)
@pytest.mark.parametrize("method", ["DELETE", "TRACE"])
async def test_a_405_lists_the_allowed_methods(http_client, base_url, path, allow, method):
    response = await http_client.fetch(
        base_url + path, method=method, raise_error=False, allow_nonstandard_methods=True
    )
    assert response.code == 405
    assert response.headers["Allow"] == allow
    assert json.loads(response.body)["error"] == "method_not_allowed"


async def test_the_jwks_is_served_as_a_jwk_set(fetch):
    response = await fetch("/.well-known/jwks.json")
    assert response.headers["Content-Type"] == "application/jwk-set+json"
    assert json.loads(response.body)["keys"]
