"""Revocation through HTTP: a revoked token gets 401 on its next request."""

from __future__ import annotations

import pytest

from backends.compact import parse_compact


@pytest.fixture(params=["memory://", "sqlite"])
def settings_overrides(request, tmp_path):
    if request.param == "sqlite":
        return {"JOTGUARD_REVOCATION_STORE": f"sqlite:///{tmp_path}/revocations.db"}
    return {"JOTGUARD_REVOCATION_STORE": request.param}


async def test_revoked_jti_gets_401_while_another_token_passes(fetch, issue_token, services):
    token, other = issue_token("alice"), issue_token("alice")
    claims = parse_compact(token).claims
    assert (await fetch("/test-auth", token=token)).code == 200

    await services.revocations.revoke_token(
        claims["jti"], issuer=claims["iss"], expires_at=claims["exp"]
    )

    response = await fetch("/test-auth", token=token)
    assert response.code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert 'error="invalid_token"' in challenge
    assert "revoked" in challenge
    assert (await fetch("/test-auth", token=other)).code == 200
