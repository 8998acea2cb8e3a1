"""POST /oauth/token through HTTP: grants, client authentication, scopes, errors."""

from __future__ import annotations

import pytest

from backends.auth.compact import parse_compact
from tests.issuance.conftest import ALL_DEMO, PASSWORD, READ_WRITE, body
from tests.token_answers import token_answer


def claims_of(token: str) -> dict[str, object]:
    return parse_compact(token).claims


def assert_oauth_error(response, status: int, error: str) -> dict[str, object]:
    assert response.code == status, response.body
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["Cache-Control"] == "no-store"
    answer = body(response)
    assert answer["error"] == error
    assert answer["error_description"]
    return answer


# -- client_credentials ------------------------------------------------------------------


@pytest.mark.parametrize("method", ["basic", "post"])
async def test_client_credentials_issues_an_rfc9068_token(
    method, make_client, token_request, fetch
):
    client = await make_client(scopes=READ_WRITE, grants=("client_credentials",))

    response = await token_request(
        {"grant_type": "client_credentials"}, client=client, method=method
    )

    answer = token_answer(response, expires_in=900)
    assert answer["scope"] == "read:catchphrases write:catchphrases"
    assert "refresh_token" not in answer  # RFC 6749 §4.4.3
    header = parse_compact(answer["access_token"]).header
    assert header["typ"] == "at+jwt"
    claims = claims_of(answer["access_token"])
    assert claims["sub"] == client[0] == claims["client_id"]
    assert claims["exp"] - claims["iat"] == 900
    assert (await fetch("/test-auth", token=answer["access_token"])).code == 200


async def test_scope_is_narrowed_on_request_and_refused_beyond(make_client, token_request):
    client = await make_client(scopes=READ_WRITE, grants=("client_credentials",))

    narrowed = await token_request(
        {"grant_type": "client_credentials", "scope": "read:catchphrases"}, client=client
    )
    assert body(narrowed)["scope"] == "read:catchphrases"
    assert claims_of(body(narrowed)["access_token"])["scope"] == "read:catchphrases"

    wider = await token_request(
        {"grant_type": "client_credentials", "scope": "read:catchphrases admin"}, client=client
    )
    answer = assert_oauth_error(wider, 400, "invalid_scope")
    assert "admin" in answer["error_description"]


async def test_malformed_scope_is_invalid_scope(make_client, token_request):
    client = await make_client()
    response = await token_request(
        {"grant_type": "client_credentials", "scope": 'read:catchphrases "x"'}, client=client
    )
    assert_oauth_error(response, 400, "invalid_scope")


async def test_wrong_secret_with_basic_is_401_with_basic_challenge(make_client, token_request):
    client_id, _ = await make_client()
    response = await token_request(
        {"grant_type": "client_credentials"}, client=(client_id, "not-the-secret")
    )
    assert_oauth_error(response, 401, "invalid_client")
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


async def test_unknown_client_and_wrong_secret_answer_alike(make_client, token_request):
    client_id, _ = await make_client()
    wrong = await token_request({"grant_type": "client_credentials"}, client=(client_id, "nope"))
    unknown = await token_request({"grant_type": "client_credentials"}, client=("ghost", "nope"))
    assert (wrong.code, wrong.body) == (unknown.code, unknown.body)


async def test_wrong_secret_in_body_is_401(make_client, token_request):
    client_id, _ = await make_client()
    response = await token_request(
        {"grant_type": "client_credentials"}, client=(client_id, "nope"), method="post"
    )
    assert_oauth_error(response, 401, "invalid_client")


async def test_no_client_authentication_is_invalid_client(token_request):
    response = await token_request({"grant_type": "client_credentials"})
    assert_oauth_error(response, 401, "invalid_client")
    assert "WWW-Authenticate" in response.headers


async def test_both_authentication_methods_at_once_is_invalid_request(make_client, token_request):
    client = await make_client()
    form = {"grant_type": "client_credentials", "client_id": client[0], "client_secret": client[1]}
    response = await token_request(form, client=client, method="basic")
    assert_oauth_error(response, 400, "invalid_request")


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic !!!notbase64",
        "Basic " + "bm9jb2xvbg==",  # "nocolon"
        "Bearer abc.def.ghi",
        "Basic",
    ],
)
async def test_malformed_client_authorization_is_invalid_client(authorization, token_request):
    response = await token_request(
        {"grant_type": "client_credentials"}, headers={"Authorization": authorization}
    )
    assert_oauth_error(response, 401, "invalid_client")


async def test_client_without_the_grant_is_unauthorized_client(make_client, token_request):
    client = await make_client(grants=("client_credentials",))
    response = await token_request(
        {"grant_type": "password", "username": "alice", "password": PASSWORD}, client=client
    )
    assert_oauth_error(response, 400, "unauthorized_client")


# -- password --------------------------------------------------------------------------


async def test_password_grant_issues_access_and_refresh_tokens(
    make_client, make_user, password_grant, fetch
):
    client = await make_client()
    alice = await make_user("alice", scopes=READ_WRITE)

    response = await password_grant(client)

    assert response.code == 200
    answer = body(response)
    assert answer["refresh_token"]
    assert answer["scope"] == "read:catchphrases write:catchphrases"
    claims = claims_of(answer["access_token"])
    assert claims["sub"] == alice.user_id
    assert claims["client_id"] == client[0]
    assert (await fetch("/api/catchphrases", token=answer["access_token"])).code == 200
    delete = await fetch("/api/catchphrases/any", method="DELETE", token=answer["access_token"])
    assert delete.code == 403
    assert body(delete)["error"] == "insufficient_scope"


async def test_user_scopes_are_limited_by_the_client(make_client, make_user, password_grant):
    client = await make_client(scopes=("read:catchphrases",))
    await make_user("alice", scopes=ALL_DEMO)

    answer = body(await password_grant(client))
    assert answer["scope"] == "read:catchphrases"

    wider = await password_grant(client, scope="read:catchphrases delete:catchphrases")
    assert_oauth_error(wider, 400, "invalid_scope")


async def test_wrong_password_and_unknown_user_answer_alike(make_client, make_user, password_grant):
    client = await make_client()
    await make_user("alice")

    wrong = await password_grant(client, username="alice", password="not the password")
    unknown = await password_grant(client, username="mallory", password="not the password")

    assert_oauth_error(wrong, 400, "invalid_grant")
    assert (wrong.code, wrong.body) == (unknown.code, unknown.body)
    assert dict(wrong.headers).keys() == dict(unknown.headers).keys()


async def test_disabled_user_answers_like_a_wrong_password(
    make_client, make_user, password_grant, issuance
):
    client = await make_client()
    await make_user("alice")
    await issuance.store.set_user_disabled("alice", True)

    disabled = await password_grant(client)
    wrong = await password_grant(client, password="nope nope nope")

    assert (disabled.code, disabled.body) == (wrong.code, wrong.body)


async def test_client_without_refresh_grant_gets_no_refresh_token(
    make_client, make_user, password_grant
):
    client = await make_client(grants=("password",))
    await make_user("alice")
    answer = body(await password_grant(client))
    assert "refresh_token" not in answer


# -- refresh_token ---------------------------------------------------------------------


async def refresh(token_request, client, refresh_token, **extra):
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
    return await token_request(form, client=client)


async def test_refresh_rotates_and_reuse_revokes_the_family(
    make_client, make_user, password_grant, token_request, fetch
):
    client = await make_client()
    await make_user("alice")
    first = body(await password_grant(client))
    r1, a1 = first["refresh_token"], first["access_token"]

    second = await refresh(token_request, client, r1)
    assert second.code == 200
    r2, a2 = body(second)["refresh_token"], body(second)["access_token"]
    assert r2 != r1
    assert (await fetch("/test-auth", token=a2)).code == 200

    reuse = await refresh(token_request, client, r1)
    assert_oauth_error(reuse, 400, "invalid_grant")

    # The whole family: the live refresh token and every access token it produced.
    assert_oauth_error(await refresh(token_request, client, r2), 400, "invalid_grant")
    for access in (a1, a2):
        response = await fetch("/test-auth", token=access)
        assert response.code == 401
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


async def test_reuse_leaves_other_logins_of_the_same_user_alone(
    make_client, make_user, password_grant, token_request, fetch
):
    client = await make_client()
    await make_user("alice")
    phone = body(await password_grant(client))
    laptop = body(await password_grant(client))

    await refresh(token_request, client, phone["refresh_token"])
    await refresh(token_request, client, phone["refresh_token"])  # reuse: phone family dies

    assert (await fetch("/test-auth", token=laptop["access_token"])).code == 200
    assert (await refresh(token_request, client, laptop["refresh_token"])).code == 200


async def test_refresh_keeps_the_grant_scope_and_may_narrow(
    make_client, make_user, password_grant, token_request
):
    client = await make_client()
    await make_user("alice", scopes=READ_WRITE)
    r1 = body(await password_grant(client))["refresh_token"]

    narrowed = await refresh(token_request, client, r1, scope="read:catchphrases")
    assert body(narrowed)["scope"] == "read:catchphrases"
    # The new refresh token still carries the original grant (RFC 6749 §6).
    again = await refresh(token_request, client, body(narrowed)["refresh_token"])
    assert body(again)["scope"] == "read:catchphrases write:catchphrases"

    wider = await refresh(
        token_request, client, body(again)["refresh_token"], scope="delete:catchphrases"
    )
    assert_oauth_error(wider, 400, "invalid_scope")


async def test_refresh_token_of_another_client_is_invalid_grant(
    make_client, make_user, password_grant, token_request
):
    owner, other = await make_client(), await make_client()
    await make_user("alice")
    r1 = body(await password_grant(owner))["refresh_token"]

    assert_oauth_error(await refresh(token_request, other, r1), 400, "invalid_grant")
    # Not treated as reuse: the owner can still refresh.
    assert (await refresh(token_request, owner, r1)).code == 200


async def test_unknown_refresh_token_is_invalid_grant(make_client, token_request):
    client = await make_client()
    assert_oauth_error(await refresh(token_request, client, "made-up"), 400, "invalid_grant")


async def test_refresh_for_a_disabled_user_is_refused(
    make_client, make_user, password_grant, token_request, issuance
):
    client = await make_client()
    await make_user("alice")
    r1 = body(await password_grant(client))["refresh_token"]
    await issuance.store.set_user_disabled("alice", True)

    assert_oauth_error(await refresh(token_request, client, r1), 400, "invalid_grant")


# -- malformed requests: 400 JSON, never 500 -------------------------------------------


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("", "invalid_request"),
        ("grant_type=client_credentials&grant_type=password", "invalid_request"),
        ("grant_type=magic", "unsupported_grant_type"),
        ("grant_type=authorization_code&code=x", "unsupported_grant_type"),
        ("grant_type=password&username=alice", "invalid_request"),
        ("grant_type=password&password=x", "invalid_request"),
        ("grant_type=refresh_token", "invalid_request"),
        ("grant_type=refresh_token&refresh_token=", "invalid_request"),
        ("grant_type", "invalid_request"),
        ("=client_credentials", "invalid_request"),
        ("grant_type=client%ffcredentials", "invalid_request"),
        ("grant_type=client_credentials&" + "x=1&" * 40, "invalid_request"),
    ],
)
async def test_malformed_form_bodies_are_400(raw, error, token_request):
    response = await token_request(raw)
    assert_oauth_error(response, 400, error)


async def test_non_ascii_body_is_400(fetch):
    response = await fetch(
        "/oauth/token",
        method="POST",
        body="grant_type=clïent".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_oauth_error(response, 400, "invalid_request")


async def test_json_body_is_400(fetch):
    response = await fetch(
        "/oauth/token",
        method="POST",
        body='{"grant_type": "client_credentials"}',
        headers={"Content-Type": "application/json"},
    )
    assert_oauth_error(response, 400, "invalid_request")


async def test_parameters_in_the_url_are_refused(make_client, token_request):
    client = await make_client()
    response = await token_request(
        {}, client=client, path="/oauth/token?grant_type=client_credentials"
    )
    assert_oauth_error(response, 400, "invalid_request")


async def test_oversized_body_is_400(token_request):
    response = await token_request("grant_type=client_credentials&pad=" + "x" * 20000)
    assert_oauth_error(response, 400, "invalid_request")


async def test_get_is_405_json(fetch):
    response = await fetch("/oauth/token")
    assert response.code == 405
    assert body(response)["error"] == "method_not_allowed"


async def test_discovery_lists_the_issuance_endpoints(fetch, services):
    document = body(await fetch("/.well-known/openid-configuration"))
    issuer = services.settings.issuer_url
    assert document["token_endpoint"] == issuer + "oauth/token"
    assert document["revocation_endpoint"] == issuer + "oauth/revoke"
    assert document["introspection_endpoint"] == issuer + "oauth/introspect"
    assert set(document["grant_types_supported"]) == {
        "client_credentials",
        "password",
        "refresh_token",
    }
    assert set(document["scopes_supported"]) >= {"admin", *ALL_DEMO}
    assert document["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
    ]
