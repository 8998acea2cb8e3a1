"""The admin API's users and clients: the lifecycle the CLI has, over HTTP, admin scope,
audited with the caller as actor; and ``{"username": ...}`` revocations."""

from __future__ import annotations

import functools
import json

import pytest

from tests.helpers import BARE_CHALLENGE
from tests.issuance.conftest import PASSWORD, body, deferred
from tests.json_requests import json_request


@pytest.fixture
def admin(issue_token):
    return issue_token("ops", scopes=["admin"])


@pytest.fixture
def call(fetch, admin):
    """``await call("POST", "/admin/...", payload=None, token=admin)``."""
    return functools.partial(json_request, fetch, token=admin)


@pytest.fixture
async def alice_session(make_client, make_user, password_grant):
    client = await make_client()
    user = await make_user()
    return client, user, body(await password_grant(client))


def refresh_form(tokens):
    return {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}


async def audit_actions(call):
    records = body(await call("GET", "/admin/audit"))["audit"]
    return [(r["actor"], r["reason"], r["kind"]) for r in records]


ROUTES = [
    ("GET", "/admin/users"),
    ("GET", "/admin/users/alice"),
    ("DELETE", "/admin/users/alice"),
    ("POST", "/admin/users/alice/disable"),
    ("POST", "/admin/users/alice/enable"),
    ("PUT", "/admin/users/alice/password"),
    ("GET", "/admin/clients"),
    ("GET", "/admin/clients/abc"),
    ("DELETE", "/admin/clients/abc"),
    ("POST", "/admin/clients/abc/disable"),
    ("POST", "/admin/clients/abc/enable"),
    ("POST", "/admin/clients/abc/secret"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_every_route_needs_a_token_with_the_admin_scope(
    call, issue_token, method, path, make_user
):
    await make_user()
    anonymous = await call(method, path, token=None)
    assert anonymous.code == 401
    assert anonymous.headers["WWW-Authenticate"] == BARE_CHALLENGE
    reader = await call(method, path, token=issue_token("eve", scopes=["read:catchphrases"]))
    assert reader.code == 403
    assert 'error="insufficient_scope"' in reader.headers["WWW-Authenticate"]
    assert 'scope="admin"' in reader.headers["WWW-Authenticate"]
    assert (await call("GET", "/admin/users/alice")).code == 200  # nothing changed


async def test_users_are_listed_without_password_hashes(call, make_user):
    alice = await make_user()
    answer = await call("GET", "/admin/users")
    assert answer.code == 200
    assert body(answer) == {
        "users": [
            {
                "user_id": alice.user_id,
                "username": "alice",
                "scopes": sorted(alice.scopes),
                "disabled": False,
                "created_at": 0.0,
            }
        ]
    }
    assert "argon2" not in answer.body.decode()
    assert body(await call("GET", "/admin/users/alice"))["user_id"] == alice.user_id


async def test_disable_revokes_and_enable_restores(
    call, alice_session, token_request, password_grant, fetch
):
    client, user, tokens = alice_session

    disabled = await call("POST", "/admin/users/alice/disable")

    assert disabled.code == 200, disabled.body
    answer = body(disabled)
    assert answer["user"]["disabled"] is True
    entry = answer["revocation"]
    assert (entry["kind"], entry["value"], entry["actor"]) == ("sub", user.user_id, "ops")
    assert (await fetch("/test-auth", token=tokens["access_token"])).code == 401
    assert body(await token_request(refresh_form(tokens), client=client))["error"] == (
        "invalid_grant"
    )
    assert (await password_grant(client)).code == 400
    assert ("ops", "user disabled", "sub") in await audit_actions(call)

    enabled = await call("POST", "/admin/users/alice/enable")
    assert enabled.code == 200
    assert body(enabled)["user"]["disabled"] is False
    assert body(enabled)["revocation"] is None
    # The disable's cutoff covers tokens stamped up to the leeway after it: a login this
    # soon would get a token the server refuses, so it is told when to come back.
    assert deferred(await password_grant(client))


async def test_delete_revokes_then_removes(call, alice_session, token_request, fetch):
    client, user, tokens = alice_session
    deleted = await call("DELETE", "/admin/users/alice")
    assert deleted.code == 200
    assert body(deleted)["revocation"]["value"] == user.user_id
    assert (await fetch("/test-auth", token=tokens["access_token"])).code == 401
    assert body(await token_request(refresh_form(tokens), client=client))["error"] == (
        "invalid_grant"
    )
    missing = await call("GET", "/admin/users/alice")
    assert missing.code == 404
    assert body(missing)["error"] == "not_found"
    assert (await call("DELETE", "/admin/users/alice")).code == 404
    assert ("ops", "user deleted", "sub") in await audit_actions(call)


async def test_password_change(call, alice_session, password_grant, fetch):
    client, _user, tokens = alice_session
    new = "another good passphrase"
    changed = await call("PUT", "/admin/users/alice/password", {"password": new})
    assert changed.code == 200, changed.body
    assert body(changed)["revocation"]["kind"] == "sub"
    assert (await fetch("/test-auth", token=tokens["access_token"])).code == 401
    assert (await password_grant(client, password=PASSWORD)).code == 400
    # The change's cutoff would refuse a token stamped within the leeway after it.
    assert deferred(await password_grant(client, password=new))
    assert ("ops", "password changed", "sub") in await audit_actions(call)


@pytest.mark.parametrize(
    ("raw", "content_type", "status", "error"),
    [
        ('{"password": "short"}', "application/json", 400, "invalid_request"),
        (json.dumps({"password": "x" * 1025}), "application/json", 400, "invalid_request"),
        ('{"password": 12345678}', "application/json", 400, "invalid_request"),
        ('{"password": "long enough", "admin": true}', "application/json", 400, "invalid_request"),
        ("[]", "application/json", 400, "invalid_request"),
        ("not json", "application/json", 400, "invalid_request"),
        ('{"password": "long enough"}', "text/plain", 415, "unsupported_media_type"),
        ('{"password": "long enough"}', None, 415, "unsupported_media_type"),
    ],
)
async def test_bad_password_bodies(fetch, admin, make_user, raw, content_type, status, error):
    await make_user()
    headers = {"Content-Type": content_type} if content_type else {}
    answer = await fetch(
        "/admin/users/alice/password", method="PUT", body=raw, token=admin, headers=headers
    )
    assert answer.code == status
    assert body(answer)["error"] == error
    assert "error_description" in body(answer)
    assert (await fetch("/admin/users/alice", token=admin)).code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/admin/users/nobody"),
        ("DELETE", "/admin/users/nobody"),
        ("POST", "/admin/users/nobody/disable"),
        ("POST", "/admin/users/nobody/enable"),
        ("GET", "/admin/clients/nobody"),
        ("DELETE", "/admin/clients/nobody"),
        ("POST", "/admin/clients/nobody/disable"),
        ("POST", "/admin/clients/nobody/enable"),
        ("POST", "/admin/clients/nobody/secret"),
    ],
)
async def test_unknown_accounts_are_404(call, method, path):
    answer = await call(method, path)
    assert answer.code == 404
    assert body(answer)["error"] == "not_found"


# -- clients -----------------------------------------------------------------------------------


async def test_clients_are_listed_without_secrets(call, make_client, issuance):
    client_id, secret = await make_client()
    listed = await call("GET", "/admin/clients")
    assert listed.code == 200
    [shown] = body(listed)["clients"]
    assert shown["client_id"] == client_id
    assert shown["disabled"] is False
    assert set(shown) == {"client_id", "name", "grant_types", "scopes", "disabled", "created_at"}
    assert secret not in listed.body.decode()
    assert body(await call("GET", f"/admin/clients/{client_id}")) == shown


async def test_client_disable_enable_delete(call, alice_session, token_request, fetch):
    client, _user, tokens = alice_session
    own = body(await token_request({"grant_type": "client_credentials"}, client=client))

    disabled = await call("POST", f"/admin/clients/{client[0]}/disable")

    assert disabled.code == 200, disabled.body
    entry = body(disabled)["revocation"]
    assert (entry["kind"], entry["value"], entry["actor"]) == ("client", client[0], "ops")
    for token in (own["access_token"], tokens["access_token"]):
        assert (await fetch("/test-auth", token=token)).code == 401
    refused = await token_request({"grant_type": "client_credentials"}, client=client)
    assert refused.code == 401
    assert body(refused)["error"] == "invalid_client"

    enabled = await call("POST", f"/admin/clients/{client[0]}/enable")
    assert body(enabled)["client"]["disabled"] is False
    assert deferred(await token_request({"grant_type": "client_credentials"}, client=client))

    deleted = await call("DELETE", f"/admin/clients/{client[0]}")
    assert deleted.code == 200
    assert body(deleted)["revocation"]["kind"] == "client"
    assert (await call("GET", f"/admin/clients/{client[0]}")).code == 404
    assert (await token_request({"grant_type": "client_credentials"}, client=client)).code == 401
    actions = await audit_actions(call)
    assert ("ops", "client disabled", "client") in actions
    assert ("ops", "client deleted", "client") in actions


async def test_client_secret_rotation(call, make_client, token_request):
    client_id, old = await make_client()
    rotated = await call("POST", f"/admin/clients/{client_id}/secret")
    assert rotated.code == 200
    assert rotated.headers["Cache-Control"] == "no-store"
    answer = body(rotated)
    assert answer["client_id"] == client_id
    assert answer["client_secret"] != old
    stale = await token_request({"grant_type": "client_credentials"}, client=(client_id, old))
    assert stale.code == 401
    fresh = (client_id, answer["client_secret"])
    assert (await token_request({"grant_type": "client_credentials"}, client=fresh)).code == 200


# -- {"username": ...} revocations ---------------------------------------------------------------


async def test_revoking_a_username_revokes_the_users_tokens(
    call, alice_session, token_request, password_grant, fetch
):
    client, user, tokens = alice_session
    answer = await call("POST", "/admin/revocations", {"username": "alice", "reason": "leak"})
    assert answer.code == 201, answer.body
    entry = body(answer)
    assert (entry["kind"], entry["value"], entry["reason"]) == ("sub", user.user_id, "leak")
    assert entry["iss"] == "http://jotguard.test/"
    assert (await fetch("/test-auth", token=tokens["access_token"])).code == 401
    assert body(await token_request(refresh_form(tokens), client=client))["error"] == (
        "invalid_grant"
    )
    # A revocation is not a disable: the login is only deferred past the cutoff's leeway.
    assert deferred(await password_grant(client))


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        ({"username": "nobody"}, "no local user named 'nobody'"),
        ({"username": "alice", "iss": "http://x/"}, "no 'iss'"),
        ({"username": "alice", "sub": "x"}, "exactly one"),
    ],
)
async def test_bad_username_revocations_are_400(call, make_user, payload, needle):
    await make_user()
    answer = await call("POST", "/admin/revocations", payload)
    assert answer.code == 400
    assert body(answer)["error"] == "invalid_request"
    assert needle in body(answer)["error_description"]


async def test_revoking_a_users_subject_ends_its_refresh_tokens_too(
    call, alice_session, token_request
):
    client, user, tokens = alice_session
    assert (await call("POST", "/admin/revocations", {"sub": user.user_id})).code == 201
    refused = await token_request(refresh_form(tokens), client=client)
    assert body(refused)["error"] == "invalid_grant"
