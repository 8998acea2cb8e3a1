"""RFC 7009 revocation and RFC 7662 introspection, authenticated as an OAuth client."""

from __future__ import annotations

import base64
import time
import uuid
from urllib.parse import quote_plus, urlencode

import pytest

from backends.auth.compact import parse_compact
from backends.issuance.base import User
from tests.revocation_http_support import body_json
from webapp.service.issuance import new_client

ENDPOINTS = ["/oauth/revoke", "/oauth/introspect"]


def basic(client_id, secret):
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode()


@pytest.fixture
def register(services):
    """``await register(scopes)`` -> (client_id, secret): a client in the registry."""

    async def add(scopes=("read:catchphrases",)):
        client, secret = await new_client(
            services.issuance.tokens.client_secrets,
            f"rs-{uuid.uuid4().hex[:8]}",
            frozenset(scopes),
            frozenset({"client_credentials", "password", "refresh_token"}),
        )
        await services.issuance.store.add_client(client)
        return client.client_id, secret

    return add


@pytest.fixture
async def caller(register):
    return await register()


@pytest.fixture
def post_form(fetch, caller):
    async def post(path, fields, *, client=caller, method="basic"):
        fields = dict(fields) if isinstance(fields, dict) else fields
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if client is not None and method == "basic":
            headers["Authorization"] = basic(*client)
        elif client is not None:
            fields = {**fields, "client_id": client[0], "client_secret": client[1]}
        body = fields if isinstance(fields, str) else urlencode(fields)
        return await fetch(path, method="POST", body=body, headers=headers)

    return post


@pytest.fixture
def own_token(issue_token, caller):
    """A token issued to the calling client."""

    def issue(subject="alice", **kwargs):
        return issue_token(subject, client_id=caller[0], **kwargs)

    return issue


def expired_token(services, client_id):
    claims = services.issuer.claims_for("alice", client_id=client_id)
    claims["iat"] -= 7200
    claims["exp"] = claims["iat"] + 60
    return services.issuer.sign(claims).token


# -- RFC 7009 ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["basic", "post"])
async def test_revoke_endpoint_revokes_the_token(method, fetch, own_token, post_form, caller):
    token, other = own_token(), own_token()
    response = await post_form(
        "/oauth/revoke",
        {"token": token, "token_type_hint": "access_token"},
        client=caller,
        method=method,
    )
    assert response.code == 200
    assert response.body == b""
    assert (await fetch("/test-auth", token=token)).code == 401
    assert (await fetch("/test-auth", token=other)).code == 200


async def test_revoke_endpoint_answers_200_for_tokens_it_cannot_use(post_form, services, caller):
    foreign = services.issuer.sign(
        {**services.issuer.claims_for("alice"), "iss": "https://elsewhere.test/"}
    ).token
    for token in ("garbage", expired_token(services, caller[0]), foreign):
        response = await post_form("/oauth/revoke", {"token": token})
        assert response.code == 200, token
    assert (await services.revocations.list_entries()).entries == []


async def test_revoke_endpoint_refuses_another_clients_token(post_form, issue_token, fetch):
    theirs = issue_token("bob", client_id="some-other-client")
    response = await post_form("/oauth/revoke", {"token": theirs})
    assert response.code == 400
    assert body_json(response)["error"] == "unauthorized_client"
    assert (await fetch("/test-auth", token=theirs)).code == 200


async def test_revoke_endpoint_records_the_client_in_the_audit_log(
    post_form, own_token, services, caller
):
    await post_form("/oauth/revoke", {"token": own_token()})
    [record] = (await services.revocations.audit_log()).records
    assert (record.action, record.actor) == ("revoke", f"client:{caller[0]}")


async def test_revoking_a_refresh_token_revokes_its_family(
    post_form, fetch, services, caller, register
):
    issuance = services.issuance
    user_password = "correct horse battery"
    await issuance.store.add_user(
        User(
            uuid.uuid4().hex,
            "alice",
            await issuance.hasher.hash(user_password),
            frozenset({"read:catchphrases"}),
            False,
            time.time(),
        )
    )
    login = await fetch(
        "/oauth/token",
        method="POST",
        body=urlencode({"grant_type": "password", "username": "alice", "password": user_password}),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": basic(*caller),
        },
    )
    tokens = body_json(login)

    other = await register()
    refused = await post_form("/oauth/revoke", {"token": tokens["refresh_token"]}, client=other)
    assert body_json(refused)["error"] == "unauthorized_client"

    response = await post_form(
        "/oauth/revoke", {"token": tokens["refresh_token"], "token_type_hint": "refresh_token"}
    )
    assert response.code == 200
    assert (await fetch("/test-auth", token=tokens["access_token"])).code == 401
    refresh = await fetch(
        "/oauth/token",
        method="POST",
        body=urlencode({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": basic(*caller),
        },
    )
    assert body_json(refresh)["error"] == "invalid_grant"


@pytest.fixture
def login(fetch, services, caller):
    """``await login()`` -> alice's tokens (access and refresh) through the calling client."""

    async def password_grant(username="alice"):
        issuance = services.issuance
        password = "correct horse battery"
        if await issuance.store.get_user_by_name(username) is None:
            await issuance.store.add_user(
                User(
                    uuid.uuid4().hex,
                    username,
                    await issuance.hasher.hash(password),
                    frozenset({"read:catchphrases"}),
                    False,
                    time.time(),
                )
            )
        form = {"grant_type": "password", "username": username, "password": password}
        response = await fetch(
            "/oauth/token",
            method="POST",
            body=urlencode(form),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Authorization": basic(*caller),
            },
        )
        assert response.code == 200, response.body
        return body_json(response)

    return password_grant


@pytest.fixture
def refresh(fetch, caller):
    async def use(refresh_token, client=caller):
        return await fetch(
            "/oauth/token",
            method="POST",
            body=urlencode({"grant_type": "refresh_token", "refresh_token": refresh_token}),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Authorization": basic(*client),
            },
        )

    return use


async def test_a_refresh_token_under_the_access_token_hint_is_revoked_all_the_same(
    post_form, fetch, login, refresh
):
    tokens = await login()
    response = await post_form(
        "/oauth/revoke", {"token": tokens["refresh_token"], "token_type_hint": "access_token"}
    )
    assert response.code == 200
    refused = await refresh(tokens["refresh_token"])
    assert refused.code == 400
    assert body_json(refused)["error"] == "invalid_grant"
    assert (await fetch("/test-auth", token=tokens["access_token"])).code == 401


async def test_an_access_token_under_the_refresh_token_hint_is_revoked_all_the_same(
    post_form, fetch, own_token
):
    token = own_token()
    response = await post_form(
        "/oauth/revoke", {"token": token, "token_type_hint": "refresh_token"}
    )
    assert response.code == 200
    assert (await fetch("/test-auth", token=token)).code == 401


# -- RFC 7662 ------------------------------------------------------------------------------


@pytest.mark.parametrize("hint", [None, "refresh_token", "access_token", "unknown"])
async def test_introspect_own_refresh_token(post_form, login, caller, services, hint):
    tokens = await login()
    form = {"token": tokens["refresh_token"]}
    if hint is not None:
        form["token_type_hint"] = hint
    before = int(time.time())
    response = await post_form("/oauth/introspect", form)
    assert response.code == 200
    answer = body_json(response)
    user = await services.issuance.store.get_user_by_name("alice")
    assert answer == {
        "active": True,
        "token_type": "refresh_token",
        "scope": "read:catchphrases",
        "client_id": caller[0],
        "sub": user.user_id,
        "iss": services.settings.issuer_url,
        "exp": answer["exp"],
        "iat": answer["iat"],
    }
    assert answer["iat"] <= before + 1
    assert answer["exp"] == answer["iat"] + services.settings.refresh_token_ttl


async def test_introspect_refresh_tokens_that_no_longer_refresh(
    post_form, login, refresh, register, services
):
    used = await login()
    assert (await refresh(used["refresh_token"])).code == 200  # rotated: the old one is spent
    revoked = await login()
    await post_form("/oauth/revoke", {"token": revoked["refresh_token"]})
    for spent in (used["refresh_token"], revoked["refresh_token"]):
        answer = await post_form("/oauth/introspect", {"token": spent})
        assert body_json(answer) == {"active": False}

    live = await login()
    theirs = await register()
    answer = await post_form("/oauth/introspect", {"token": live["refresh_token"]}, client=theirs)
    assert body_json(answer) == {"active": False}
    resource_server = await register(scopes=("admin",))
    answer = await post_form(
        "/oauth/introspect", {"token": live["refresh_token"]}, client=resource_server
    )
    assert body_json(answer)["active"] is True

    user = await services.issuance.store.get_user_by_name("alice")
    await services.revocations.revoke_subject(
        user.user_id, before=time.time(), issuer=services.settings.issuer_url
    )
    answer = await post_form("/oauth/introspect", {"token": live["refresh_token"]})
    assert body_json(answer) == {"active": False}


async def test_introspect_active_token(post_form, own_token):
    token = own_token(scopes=["read:catchphrases", "write:catchphrases"])
    claims = parse_compact(token).claims
    response = await post_form("/oauth/introspect", {"token": token})
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["Cache-Control"] == "no-store"
    body = body_json(response)
    assert body["active"] is True
    assert body["scope"] == "read:catchphrases write:catchphrases"
    for claim in ("sub", "client_id", "exp", "iat", "jti", "iss"):
        assert body[claim] == claims[claim], claim


async def test_introspect_inactive_tokens(post_form, own_token, services, caller):
    revoked = own_token()
    await post_form("/oauth/revoke", {"token": revoked})
    forged = own_token()[:-4] + "AAAA"
    for token in (revoked, expired_token(services, caller[0]), forged, "garbage"):
        response = await post_form("/oauth/introspect", {"token": token})
        assert response.code == 200
        assert body_json(response) == {"active": False}, token


async def test_introspect_hides_other_clients_tokens_unless_admin(post_form, issue_token, register):
    theirs = issue_token("bob", client_id="some-other-client")
    assert body_json(await post_form("/oauth/introspect", {"token": theirs})) == {"active": False}
    resource_server = await register(scopes=("admin",))
    seen = await post_form("/oauth/introspect", {"token": theirs}, client=resource_server)
    assert body_json(seen)["active"] is True
    assert body_json(seen)["client_id"] == "some-other-client"


# -- client authentication and bad requests, both endpoints ---------------------------------


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_endpoint_refuses_callers_without_client_credentials(
    path, post_form, own_token, issue_token, fetch, caller
):
    no_credentials = await post_form(path, {"token": own_token()}, client=None)
    assert no_credentials.code == 401
    assert body_json(no_credentials)["error"] == "invalid_client"
    assert no_credentials.headers["WWW-Authenticate"].startswith("Basic ")

    wrong_secret = await post_form(path, {"token": own_token()}, client=(caller[0], "nope"))
    assert wrong_secret.code == 401
    assert wrong_secret.headers["WWW-Authenticate"].startswith("Basic ")

    # A bearer token, even an admin one, is not client authentication.
    admin = issue_token("root", scopes=["admin"])
    bearer = await fetch(
        path,
        method="POST",
        body=urlencode({"token": own_token()}),
        token=admin,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert bearer.code == 401
    assert body_json(bearer)["error"] == "invalid_client"


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_endpoint_needs_exactly_one_token_parameter(path, post_form):
    for body in ("", "token=", "token=a&token=b", "nottoken=a", "token=%ff"):
        response = await post_form(path, body)
        assert response.code == 400, body
        assert body_json(response)["error"] == "invalid_request"


@pytest.mark.parametrize(
    "settings_overrides",
    [{"JOTGUARD_REVOCATION_STORE": "redis://127.0.0.1:1/0", "JOTGUARD_REVOCATION_FAIL_OPEN": "1"}],
)
async def test_store_down_is_503_even_when_failing_open(post_form, own_token):
    # Neither answer can be given without the revocation store.
    for path in ENDPOINTS:
        response = await post_form(path, {"token": own_token()})
        assert response.code == 503, path
        assert "Retry-After" in response.headers
