"""DPoP with a remote issuer: its tokens bound by cnf.jkt, and its own "dpop" mode in
JOTGUARD_REMOTE_ISSUERS."""

from __future__ import annotations

import json

import pytest

from backends.dpop import jwk_thumbprint
from tests.dpop_http import DPoPClient, refused_with
from tests.dpop_support import key_for
from tests.fake_issuer import FakeIssuer
from webapp.config.fields import SettingsError
from webapp.config.settings import Settings


def remote_issuer(fake: FakeIssuer, dpop: str) -> str:
    entry = {"issuer": fake.issuer, "audience": fake.audience, "jwks_uri": fake.jwks_uri}
    return json.dumps([{**entry, "dpop": dpop}])


@pytest.fixture
def settings_overrides(request, fake_issuer: FakeIssuer) -> dict[str, str]:
    mode, issuer_mode = getattr(request, "param", ("allowed", "required"))
    return {
        "JOTGUARD_DPOP": mode,
        "JOTGUARD_REMOTE_ISSUERS": remote_issuer(fake_issuer, issuer_mode),
        "JOTGUARD_JWKS_TIMEOUT": "0.5",
    }


async def test_a_remote_issuers_bound_token_passes_with_its_proof(dpop_client, fake_issuer):
    bound = fake_issuer.sign(cnf={"jkt": jwk_thumbprint(dpop_client.key)})
    assert (await dpop_client.send("/test-auth", bound)).code == 200
    thief = DPoPClient(dpop_client.fetch, dpop_client.base_url, key_for("EdDSA"))
    refused_with(await thief.send("/test-auth", bound), "invalid_dpop_proof")


async def test_a_remote_issuer_can_require_dpop(fetch, fake_issuer, issue_token):
    response = await fetch("/test-auth", token=fake_issuer.sign())
    assert "requires" in refused_with(response, "invalid_token")
    # The local issuer's tokens follow JOTGUARD_DPOP (allowed).
    assert (await fetch("/test-auth", token=issue_token())).code == 200


@pytest.mark.parametrize("settings_overrides", [("required", "allowed")], indirect=True)
async def test_a_remote_issuer_can_allow_bearer_where_dpop_is_required(
    fetch, fake_issuer, issue_token
):
    assert (await fetch("/test-auth", token=fake_issuer.sign())).code == 200
    refused_with(await fetch("/test-auth", token=issue_token()), "invalid_token")


@pytest.mark.parametrize("mode", ["required", "allowed"])
def test_an_issuer_cannot_set_dpop_while_it_is_off(mode):
    entry = [{"issuer": "https://idp.example/", "audience": "api", "dpop": mode}]
    environ = {
        "JOTGUARD_ENV_FILE": "/nonexistent",
        "JOTGUARD_DPOP": "off",
        "JOTGUARD_REMOTE_ISSUERS": json.dumps(entry),
    }
    with pytest.raises(SettingsError) as caught:
        Settings.load(environ=environ)
    assert "JOTGUARD_DPOP is off" in str(caught.value)


@pytest.mark.parametrize("value", ["sometimes", True, ["required"]])
def test_an_issuers_dpop_mode_is_checked(value):
    entry = [{"issuer": "https://idp.example/", "audience": "api", "dpop": value}]
    environ = {"JOTGUARD_ENV_FILE": "/nonexistent", "JOTGUARD_REMOTE_ISSUERS": json.dumps(entry)}
    with pytest.raises(SettingsError) as caught:
        Settings.load(environ=environ)
    assert "'dpop' must be" in str(caught.value)
