"""Refresh tokens of a DPoP login (RFC 9449 §5): bound to the login's key, refused with
another key's proof or none, rotated and reuse-detected as before, recognised when a
lost rotation is retried; unbound logins stay unbound; introspection reports ``cnf``."""

from __future__ import annotations

import uuid

import pytest
from mongomock_motor import AsyncMongoMockClient

from backends.dpop import generate_key, jwk_thumbprint
from backends.issuance.base import ROTATION_REPLAY_WINDOW
from backends.issuance.mongo import MongoIssuanceStore
from tests.clock import FakeClock
from tests.dpop_support import key_for
from tests.issuance.conftest import PASSWORD, READ_WRITE, body
from tests.issuance.test_token_dpop import assert_bearer, assert_bound, cnf_of
from tests.issuance.test_token_endpoint import assert_oauth_error

LOGIN = {"grant_type": "password", "username": "alice", "password": PASSWORD}


def refresh_form(refresh_token: str) -> dict[str, str]:
    return {"grant_type": "refresh_token", "refresh_token": refresh_token}


@pytest.fixture
async def client(make_client, make_user):
    await make_user()
    return await make_client(scopes=READ_WRITE)


@pytest.fixture
def key():
    return key_for("ES256")


@pytest.fixture
async def bound_login(client, dpop_request, key) -> dict:
    return assert_bound(await dpop_request(LOGIN, client=client, key=key), key)


def assert_key_not_proven(response) -> None:
    answer = assert_oauth_error(response, 400, "invalid_grant")
    assert "DPoP key" in answer["error_description"]


async def test_a_refresh_by_the_same_key_rotates_and_stays_bound(
    bound_login, client, dpop_request, key
):
    first = bound_login["refresh_token"]
    rotated = assert_bound(await dpop_request(refresh_form(first), client=client, key=key), key)
    assert rotated["refresh_token"] != first
    # The successor is bound too: without the key it is refused.
    unproven = await dpop_request(refresh_form(rotated["refresh_token"]), client=client)
    assert_key_not_proven(unproven)
    again = await dpop_request(refresh_form(rotated["refresh_token"]), client=client, key=key)
    assert_bound(again, key)


async def test_another_keys_proof_is_refused_and_changes_nothing(
    bound_login, client, dpop_request, key
):
    stolen = bound_login["refresh_token"]
    thief = generate_key("ES256")
    assert_key_not_proven(await dpop_request(refresh_form(stolen), client=client, key=thief))
    # Neither spent nor revoked: its owner refreshes with it as before.
    assert_bound(await dpop_request(refresh_form(stolen), client=client, key=key), key)


async def test_no_proof_is_refused_and_changes_nothing(bound_login, client, dpop_request, key):
    stolen = bound_login["refresh_token"]
    assert_key_not_proven(await dpop_request(refresh_form(stolen), client=client))
    assert_bound(await dpop_request(refresh_form(stolen), client=client, key=key), key)


async def test_reuse_by_the_key_holder_revokes_the_family(
    bound_login, client, dpop_request, key, issuance
):
    clock = issuance.tokens.clock = FakeClock()
    first = bound_login["refresh_token"]
    rotated = body(await dpop_request(refresh_form(first), client=client, key=key))
    clock.advance(ROTATION_REPLAY_WINDOW + 1)

    reuse = await dpop_request(refresh_form(first), client=client, key=key)

    answer = assert_oauth_error(reuse, 400, "invalid_grant")
    assert "family is revoked" in answer["error_description"]
    after = await dpop_request(refresh_form(rotated["refresh_token"]), client=client, key=key)
    assert_oauth_error(after, 400, "invalid_grant")


async def test_a_used_token_without_its_key_revokes_nothing(
    bound_login, client, dpop_request, key, issuance
):
    # Whoever lacks the key cannot even end the login by replaying a used token.
    clock = issuance.tokens.clock = FakeClock()
    first = bound_login["refresh_token"]
    rotated = body(await dpop_request(refresh_form(first), client=client, key=key))
    clock.advance(ROTATION_REPLAY_WINDOW + 1)  # past the retry of a lost rotation: reuse

    assert_key_not_proven(await dpop_request(refresh_form(first), client=client))
    thief = generate_key("ES256")
    assert_key_not_proven(await dpop_request(refresh_form(first), client=client, key=thief))

    after = await dpop_request(refresh_form(rotated["refresh_token"]), client=client, key=key)
    assert_bound(after, key)


async def test_a_refresh_of_an_unbound_login_with_a_proof_binds_the_access_token_only(
    client, dpop_request, key
):
    login = assert_bearer(await dpop_request(LOGIN, client=client))
    refreshed = await dpop_request(refresh_form(login["refresh_token"]), client=client, key=key)
    bound = assert_bound(refreshed, key)
    # The login's binding was fixed when it started: its refresh tokens stay unbound.
    assert_bearer(await dpop_request(refresh_form(bound["refresh_token"]), client=client))


@pytest.mark.parametrize("settings_overrides", [{"JOTGUARD_DPOP": "required"}])
async def test_required_mode_refuses_a_refresh_without_a_proof(client, dpop_request, key):
    login = assert_bound(await dpop_request(LOGIN, client=client, key=key), key)
    refused = await dpop_request(refresh_form(login["refresh_token"]), client=client)
    assert_oauth_error(refused, 400, "invalid_dpop_proof")


# -- the retry of a rotation whose answer was lost (the Mongo store's replay window) -----


@pytest.fixture
async def mongo_issuance(issuance):
    """The service's grants on a MongoDB issuance store (mongomock)."""
    store = MongoIssuanceStore(AsyncMongoMockClient()[f"dpop_{uuid.uuid4().hex[:8]}"])
    issuance.store = issuance.tokens.store = store
    yield store
    await store.close()


async def test_a_lost_rotation_retried_by_the_same_key_is_replayed_and_stays_bound(
    mongo_issuance, client, dpop_request, key
):
    login = assert_bound(await dpop_request(LOGIN, client=client, key=key), key)
    first = login["refresh_token"]
    assert_bound(await dpop_request(refresh_form(first), client=client, key=key), key)
    # The answer of that rotation never reached the client (see test_mongo_rotation_replay).
    await mongo_issuance.tokens.update_many({}, {"$unset": {"answered": ""}})

    thief = generate_key("ES256")
    assert_key_not_proven(await dpop_request(refresh_form(first), client=client, key=thief))
    retried = assert_bound(await dpop_request(refresh_form(first), client=client, key=key), key)
    assert_key_not_proven(await dpop_request(refresh_form(retried["refresh_token"]), client=client))


# -- introspection (RFC 9449 §6.2) ----------------------------------------------------------


async def introspect(token_request, client, token: str) -> dict:
    response = await token_request({"token": token}, client=client, path="/oauth/introspect")
    assert response.code == 200, response.body
    return body(response)


async def test_introspection_reports_cnf_of_bound_tokens(bound_login, client, token_request, key):
    access = await introspect(token_request, client, bound_login["access_token"])
    assert access["active"] is True
    assert access["token_type"] == "DPoP"
    assert access["cnf"] == {"jkt": jwk_thumbprint(key)} == cnf_of(bound_login)

    refresh = await introspect(token_request, client, bound_login["refresh_token"])
    assert refresh["active"] is True
    assert refresh["token_type"] == "refresh_token"
    assert refresh["cnf"] == {"jkt": jwk_thumbprint(key)}


async def test_introspection_of_unbound_tokens_has_no_cnf(client, dpop_request, token_request):
    login = assert_bearer(await dpop_request(LOGIN, client=client))
    for token in (login["access_token"], login["refresh_token"]):
        answer = await introspect(token_request, client, token)
        assert answer["active"] is True
        assert "cnf" not in answer
    assert (await introspect(token_request, client, login["access_token"]))["token_type"] == (
        "Bearer"
    )
