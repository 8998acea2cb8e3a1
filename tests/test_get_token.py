"""GET /get-token in Auth0 mode: the tutorial's exchange against a fake /oauth/token."""

from __future__ import annotations

import json
import logging

import pytest
from tornado.testing import bind_unused_port

from tests.fake_issuer import FakeIssuer
from tests.token_answers import token_answer


@pytest.fixture
def settings_overrides(fake_issuer: FakeIssuer) -> dict[str, str]:
    return {
        "AUTH0_ISSUER": fake_issuer.issuer,
        "AUTH0_AUDIENCE": fake_issuer.audience,
        "AUTH0_CLIENT_ID": fake_issuer.client_id,
        "AUTH0_CLIENT_SECRET": fake_issuer.client_secret,
        "AUTH0_TOKEN_URL": fake_issuer.token_url,
        "AUTH0_TOKEN_TIMEOUT": "0.3",
    }


def body_of(response) -> dict:
    return json.loads(response.body)


async def test_returns_the_upstream_token_which_the_api_accepts(fetch, fake_issuer):
    response = await fetch("/get-token")
    token = token_answer(response, expires_in=3600)
    assert fake_issuer.last_token_form == {
        "grant_type": "client_credentials",
        "client_id": fake_issuer.client_id,
        "client_secret": fake_issuer.client_secret,
        "audience": fake_issuer.audience,
    }
    # The tutorial's whole flow: the token from /get-token opens /test-auth.
    protected = await fetch("/test-auth", token=token["access_token"])
    assert protected.code == 200


async def test_upstream_down_is_502(fetch, fake_issuer):
    await fake_issuer.stop()
    response = await fetch("/get-token")
    assert response.code == 502
    assert body_of(response)["error"] == "upstream_unavailable"


async def test_upstream_hanging_is_504(fetch, fake_issuer):
    fake_issuer.token_mode = "hang"
    response = await fetch("/get-token")
    assert response.code == 504
    assert body_of(response)["error"] == "upstream_timeout"


@pytest.mark.parametrize("mode", ["status500", "html"])
async def test_a_broken_upstream_is_502(fetch, fake_issuer, mode):
    fake_issuer.token_mode = mode
    response = await fetch("/get-token")
    assert response.code == 502
    assert body_of(response)["error"] == "upstream_error"


async def test_an_upstream_oauth_error_passes_through_without_the_secret(
    fetch, fake_issuer, caplog
):
    caplog.set_level(logging.DEBUG)
    fake_issuer.token_mode = "echo_secret"  # its error repeats the form, secret included
    response = await fetch("/get-token")
    assert response.code == 401
    body = body_of(response)
    assert body["error"] == "access_denied"
    assert body["error_description"].startswith("Unauthorized: ")
    assert "[redacted]" in body["error_description"]
    assert fake_issuer.client_secret not in response.body.decode()
    assert fake_issuer.client_secret not in caplog.text


async def test_an_upstream_rate_limit_passes_through_with_retry_after(fetch, fake_issuer):
    fake_issuer.token_mode = "rate_limited"
    response = await fetch("/get-token")
    assert response.code == 429
    assert response.headers["Retry-After"] == "7"
    assert body_of(response) == {"error": "too_many_requests", "error_description": "slow down"}


class TestWrongSecret:
    @pytest.fixture
    def settings_overrides(self, fake_issuer) -> dict[str, str]:
        return {
            "AUTH0_AUDIENCE": fake_issuer.audience,
            "AUTH0_CLIENT_ID": fake_issuer.client_id,
            "AUTH0_CLIENT_SECRET": "a-wrong-secret-123",
            "AUTH0_TOKEN_URL": fake_issuer.token_url,
        }

    async def test_refused_credentials_are_the_upstreams_401(self, fetch):
        response = await fetch("/get-token")
        assert response.code == 401
        assert "a-wrong-secret-123" not in response.body.decode()


class TestNotConfigured:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        return {}

    async def test_the_route_is_404_json(self, fetch):
        response = await fetch("/get-token")
        assert response.code == 404
        assert body_of(response)["error"] == "not_found"


class TestUnreachableHost:
    @pytest.fixture
    def settings_overrides(self, fake_issuer) -> dict[str, str]:
        sock, port = bind_unused_port()
        sock.close()
        return {
            "AUTH0_AUDIENCE": fake_issuer.audience,
            "AUTH0_CLIENT_ID": "id",
            "AUTH0_CLIENT_SECRET": "secret-value",
            "AUTH0_TOKEN_URL": f"http://127.0.0.1:{port}/oauth/token",
        }

    async def test_connection_refused_is_502(self, fetch):
        response = await fetch("/get-token")
        assert response.code == 502
        assert "secret-value" not in response.body.decode()


def test_auth0_and_local_get_token_together_are_refused():
    from webapp.config.fields import SettingsError
    from webapp.config.settings import Settings

    with pytest.raises(SettingsError, match="JOTGUARD_GET_TOKEN_CLIENT_ID"):
        Settings.load(
            environ={
                "JOTGUARD_ENV_FILE": "/nonexistent.env",
                "AUTH0_DOMAIN": "tenant.example.com",
                "AUTH0_AUDIENCE": "https://api.example",
                "AUTH0_CLIENT_ID": "abc",
                "AUTH0_CLIENT_SECRET": "s3cret",
                "JOTGUARD_GET_TOKEN_CLIENT_ID": "local-client",
            }
        )
