"""RFC 7009 revocation and RFC 7662 introspection, authorised (for now) by an admin token."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from backends.compact import parse_compact
from tests.revocation_http_support import body_json


@pytest.fixture
def post_form(fetch, issue_token):
    admin = issue_token("root", scopes=["admin"])

    async def post(path, fields, *, token=admin):
        body = fields if isinstance(fields, str) else urlencode(fields)
        return await fetch(
            path,
            method="POST",
            body=body,
            token=token,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )

    return post


def expired_token(services):
    claims = services.issuer.claims_for("alice")
    claims["iat"] -= 7200
    claims["exp"] = claims["iat"] + 60
    return services.issuer.sign(claims).token


# -- RFC 7009 ------------------------------------------------------------------------------


async def test_revoke_endpoint_revokes_the_token(fetch, issue_token, post_form):
    token, other = issue_token("alice"), issue_token("alice")
    response = await post_form("/oauth/revoke", {"token": token, "token_type_hint": "access_token"})
    assert response.code == 200
    assert (await fetch("/test-auth", token=token)).code == 401
    assert (await fetch("/test-auth", token=other)).code == 200


async def test_revoke_endpoint_answers_200_for_tokens_it_cannot_use(post_form, services):
    foreign = services.issuer.sign(
        {**services.issuer.claims_for("alice"), "iss": "https://elsewhere.test/"}
    ).token
    for token in ("garbage", expired_token(services), foreign):
        response = await post_form("/oauth/revoke", {"token": token})
        assert response.code == 200, token
    assert (await services.revocations.list_entries()).entries == []


async def test_revoke_endpoint_records_the_caller_in_the_audit_log(
    post_form, issue_token, services
):
    await post_form("/oauth/revoke", {"token": issue_token("alice")})
    [record] = (await services.revocations.audit_log()).records
    assert (record.action, record.actor) == ("revoke", "root")


# -- RFC 7662 ------------------------------------------------------------------------------


async def test_introspect_active_token(post_form, issue_token):
    token = issue_token("alice", scopes=["read:catchphrases", "write:catchphrases"])
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


async def test_introspect_inactive_tokens(post_form, issue_token, services):
    revoked = issue_token("alice")
    await post_form("/oauth/revoke", {"token": revoked})
    forged = issue_token("alice")[:-4] + "AAAA"
    for token in (revoked, expired_token(services), forged, "garbage"):
        response = await post_form("/oauth/introspect", {"token": token})
        assert response.code == 200
        assert body_json(response) == {"active": False}, token


# -- authorisation and bad requests, both endpoints -----------------------------------------

ENDPOINTS = ["/oauth/revoke", "/oauth/introspect"]


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_endpoint_refuses_callers_without_credentials_or_scope(
    path, fetch, post_form, issue_token
):
    response = await fetch(path, method="POST", body=urlencode({"token": issue_token()}))
    assert response.code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="jotguard"'
    user = issue_token("mallory", scopes=["read:catchphrases"])
    refused = await post_form(path, {"token": issue_token()}, token=user)
    assert refused.code == 403
    assert 'error="insufficient_scope"' in refused.headers["WWW-Authenticate"]


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_endpoint_needs_exactly_one_token_parameter(path, post_form):
    for body in ("", "token=", "token=a&token=b", "nottoken=a"):
        response = await post_form(path, body)
        assert response.code == 400, body
        assert body_json(response) == {
            "error": "invalid_request",
            "error_description": "Send the 'token' parameter exactly once",
        }


@pytest.mark.parametrize(
    "settings_overrides",
    [{"JOTGUARD_REVOCATION_STORE": "redis://127.0.0.1:1/0", "JOTGUARD_REVOCATION_FAIL_OPEN": "1"}],
)
async def test_store_down_is_503_even_when_failing_open(post_form, issue_token):
    # Fail-open lets the admin caller through; neither answer can be given without the store.
    for path in ENDPOINTS:
        response = await post_form(path, {"token": issue_token("alice")})
        assert response.code == 503, path
        assert "Retry-After" in response.headers
