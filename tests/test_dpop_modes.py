"""When DPoP is taken or required on protected routes: JOTGUARD_DPOP, per remote issuer,
per handler; and how its refusals meet the rate limits."""

from __future__ import annotations

import json

import pytest
from tornado.web import Application

from backends.dpop import jwk_thumbprint
from tests.dpop_http import ALGS, bound_token, refused_with
from webapp.service.app import make_app, protected
from webapp.service.services import Services
from webapp.web.handler import AuthenticatedHandler

OFF = pytest.mark.parametrize("settings_overrides", [{"JOTGUARD_DPOP": "off"}])
REQUIRED = pytest.mark.parametrize("settings_overrides", [{"JOTGUARD_DPOP": "required"}])


class DPoPOnlyHandler(AuthenticatedHandler):
    dpop_required = True

    def get(self) -> None:
        self.write({"sub": self.principal.subject, "jkt": self.principal.jkt})


class AnyoneHandler(AuthenticatedHandler):
    auth_required = False

    def get(self) -> None:
        caller = self.current_user
        self.write({"sub": caller.subject if caller is not None else None})


@pytest.fixture
def app(services: Services) -> Application:
    application = make_app(services)
    extra = [(r"/dpop-only", DPoPOnlyHandler), (r"/anyone", AnyoneHandler)]
    application.add_handlers(r".*", [(path, h, protected(services)) for path, h in extra])
    return application


# -- JOTGUARD_DPOP=off: DPoP is another scheme, bound tokens are refused ---------------


@OFF
async def test_off_takes_no_dpop_scheme(dpop_client, services):
    response = await dpop_client.send("/test-auth", bound_token(services, dpop_client.key))
    assert response.code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="jotguard"'  # no credentials


@OFF
async def test_off_refuses_a_bound_token_sent_as_bearer(dpop_client, fetch, services):
    response = await fetch("/test-auth", token=bound_token(services, dpop_client.key))
    assert response.code == 401
    assert response.headers["WWW-Authenticate"].startswith(
        'Bearer realm="jotguard", error="invalid_token", error_description="The token is bound'
    )


@OFF
async def test_off_leaves_bearer_tokens_and_challenges_as_they_were(fetch, issue_token):
    assert (await fetch("/test-auth", token=issue_token())).code == 200
    assert (await fetch("/test-auth")).headers["WWW-Authenticate"] == 'Bearer realm="jotguard"'


@OFF
async def test_off_refuses_everything_on_a_handler_that_requires_dpop(fetch, issue_token):
    response = await fetch("/dpop-only", token=issue_token())
    assert response.code == 401
    assert "DPoP is off" in json.loads(response.body)["error_description"]


# -- JOTGUARD_DPOP=required: Bearer tokens are refused ----------------------------------


@REQUIRED
async def test_required_refuses_an_unbound_bearer_token(fetch, issue_token):
    response = await fetch("/test-auth", token=issue_token())
    assert "requires" in refused_with(response, "invalid_token")


@REQUIRED
async def test_required_takes_a_bound_token_with_its_proof(dpop_client, services):
    assert (
        await dpop_client.send("/test-auth", bound_token(services, dpop_client.key))
    ).code == 200


@REQUIRED
async def test_required_offers_only_dpop_without_credentials(fetch):
    response = await fetch("/test-auth")
    assert response.code == 401
    assert response.headers["WWW-Authenticate"] == f'DPoP algs="{ALGS}"'


# -- a handler that requires DPoP for itself ---------------------------------------------


async def test_a_handler_can_require_dpop(fetch, dpop_client, services, issue_token):
    unbound = await fetch("/dpop-only", token=issue_token())
    assert "requires" in refused_with(unbound, "invalid_token")
    assert (await fetch("/dpop-only")).headers["WWW-Authenticate"] == f'DPoP algs="{ALGS}"'
    ok = await dpop_client.send("/dpop-only", bound_token(services, dpop_client.key))
    assert ok.code == 200
    assert json.loads(ok.body)["jkt"] == jwk_thumbprint(dpop_client.key)
    assert (await fetch("/test-auth", token=issue_token())).code == 200  # other routes: Bearer


async def test_an_anonymous_route_takes_dpop_and_refuses_a_bad_proof(fetch, dpop_client, services):
    token = bound_token(services, dpop_client.key)
    assert json.loads((await dpop_client.send("/anyone", token)).body) == {"sub": "alice"}
    proof = dpop_client.proof("/test-auth", token)  # for another route
    refused_with(await dpop_client.send("/anyone", token, proof=proof), "invalid_dpop_proof")
    assert json.loads((await fetch("/anyone")).body) == {"sub": None}
