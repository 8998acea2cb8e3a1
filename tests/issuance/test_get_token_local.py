"""GET /get-token in local mode: off by default; a configured client's token when on."""

from __future__ import annotations

import time

import pytest

from backends.issuance.base import Client
from tests.issuance.conftest import body
from webapp.config.fields import SettingsError
from webapp.config.settings import Settings
from webapp.service.services import Services

CLIENT_ID = "tutorial-client"
SECRET = "tutorial-secret-value"


async def register(issuance, *, secret=SECRET, grants=("client_credentials",)):
    await issuance.store.add_client(
        Client(
            client_id=CLIENT_ID,
            name="tutorial",
            secret_hash=await issuance.hasher.hash(secret),
            grant_types=frozenset(grants),
            scopes=frozenset({"read:catchphrases"}),
            created_at=time.time(),
        )
    )


class TestOff:
    async def test_get_token_is_404_unless_configured(self, fetch):
        response = await fetch("/get-token")
        assert response.code == 404
        assert body(response)["error"] == "not_found"


class TestOn:
    @pytest.fixture
    def settings_overrides(self):
        return {
            "JOTGUARD_GET_TOKEN_CLIENT_ID": CLIENT_ID,
            "JOTGUARD_GET_TOKEN_CLIENT_SECRET": SECRET,
        }

    async def test_hands_out_the_clients_token(self, fetch, issuance):
        await register(issuance)

        response = await fetch("/get-token")

        assert response.code == 200
        assert response.headers["Cache-Control"] == "no-store"
        answer = body(response)
        assert answer["token_type"] == "Bearer"
        assert answer["scope"] == "read:catchphrases"
        assert (await fetch("/test-auth", token=answer["access_token"])).code == 200
        assert (await fetch("/api/catchphrases", token=answer["access_token"])).code == 200

    async def test_secret_is_checked_once_not_per_request(self, fetch, issuance, monkeypatch):
        await register(issuance)
        calls = []
        original = issuance.hasher.verify

        async def counting(encoded, secret):
            calls.append(1)
            return await original(encoded, secret)

        monkeypatch.setattr(issuance.hasher, "verify", counting)
        for _ in range(3):
            assert (await fetch("/get-token")).code == 200
        assert len(calls) == 1

    async def test_wrong_secret_is_503_without_leaking_it(self, fetch, issuance):
        await register(issuance, secret="another-secret")
        response = await fetch("/get-token")
        assert response.code == 503
        assert body(response)["error"] == "temporarily_unavailable"
        assert SECRET.encode() not in response.body
        assert response.headers["Retry-After"]

    async def test_unknown_client_is_503(self, fetch):
        response = await fetch("/get-token")
        assert response.code == 503

    async def test_client_without_the_grant_is_503(self, fetch, issuance):
        await register(issuance, grants=("password",))
        assert (await fetch("/get-token")).code == 503


async def test_client_id_without_secret_stops_start_up(data_dir):
    settings = Settings.load(
        environ={
            "JOTGUARD_DATA_DIR": str(data_dir),
            "JOTGUARD_ENV_FILE": str(data_dir / "absent.env"),
            "JOTGUARD_GET_TOKEN_CLIENT_ID": CLIENT_ID,
        }
    )
    with pytest.raises(SettingsError) as raised:
        await Services.start(settings)
    assert raised.value.name == "JOTGUARD_GET_TOKEN_CLIENT_SECRET"
