"""Each supported signing algorithm end to end, and families never mixed."""

from __future__ import annotations

import json

import pytest

from backends.keys.keyring import Keyring, generate_key
from tests.forge import good_claims, sign


@pytest.fixture(params=["ES256", "EdDSA", "HS256"])
def settings_overrides(request, data_dir):
    keyring = data_dir / "keyring.json"
    keyring.unlink()  # the session RSA keyring does not fit
    Keyring(keyring, request.param, retention=60).ensure()  # as `jotguard init` would
    return {"JOTGUARD_SIGNING_ALG": request.param}


async def test_issued_token_verifies(fetch, issue_token, services):
    assert services.keyring.current.alg == services.settings.signing_alg
    assert (await fetch("/test-auth", token=issue_token("alice"))).code == 200


async def test_other_family_is_refused(fetch, services):
    rsa = generate_key("RS256")
    forged = sign(rsa, good_claims(), kid=services.keyring.current.kid)
    response = await fetch("/test-auth", token=forged)
    assert response.code == 401


async def test_jwks_never_publishes_secrets(fetch, services):
    keys = json.loads((await fetch("/.well-known/jwks.json")).body)["keys"]
    if services.settings.signing_alg == "HS256":
        assert keys == []
    else:
        assert [k["kid"] for k in keys] == [services.keyring.current.kid]
        assert all("d" not in k for k in keys)


def test_keyring_file_is_private(tmp_path):
    path = tmp_path / "keys" / "keyring.json"
    Keyring(path, "ES256", retention=60).ensure()
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
