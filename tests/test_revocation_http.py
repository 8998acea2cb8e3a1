"""Revocation through HTTP: revoke by jti, subject, client or whole token; undo; list;
audit; and every way an admin request can be refused."""

from __future__ import annotations

import functools
import json
import time

import pytest

from backends.auth.compact import parse_compact
from tests.helpers import BARE_CHALLENGE
from tests.json_requests import json_request
from tests.revocation_http_support import body_json, store_url

STORES = ["memory", "sqlite", pytest.param("redis", marks=pytest.mark.redis)]


every_store = pytest.mark.parametrize("store_kind", STORES)


@pytest.fixture
def store_kind():
    """The default store; flows marked ``every_store`` run against each store."""
    return "sqlite"


@pytest.fixture
async def settings_overrides(store_kind, tmp_path):
    async with store_url(store_kind, tmp_path) as url:
        yield {"JOTGUARD_REVOCATION_STORE": url}


@pytest.fixture
def admin_token(issue_token):
    return issue_token("root", scopes=["admin"])


@pytest.fixture
def admin(fetch, admin_token):
    """``await admin("POST", "/admin/revocations", {...})`` with the admin token."""

    return functools.partial(json_request, fetch, token=admin_token)


def jti_of(token):
    return parse_compact(token).claims["jti"]


async def status(fetch, token):
    return (await fetch("/test-auth", token=token)).code


# -- the four ways to revoke -------------------------------------------------------------


@every_store
async def test_revoke_by_jti(fetch, issue_token, admin):
    token, other = issue_token("alice"), issue_token("alice")
    assert await status(fetch, token) == 200
    response = await admin("POST", "/admin/revocations", {"jti": jti_of(token), "reason": "leak"})
    assert response.code == 201
    entry = body_json(response)
    assert (entry["kind"], entry["value"], entry["reason"], entry["actor"]) == (
        "jti",
        jti_of(token),
        "leak",
        "root",
    )
    assert response.headers["Location"] == f"/admin/revocations/{entry['id']}"
    refused = await fetch("/test-auth", token=token)
    assert refused.code == 401
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    assert body_json(refused) == {
        "error": "invalid_token",
        "error_description": "The token has been revoked",
    }
    assert await status(fetch, other) == 200


@every_store
async def test_revoke_by_subject_logs_out_everywhere(fetch, issue_token, admin):
    alice1, alice2, bob = issue_token("alice"), issue_token("alice"), issue_token("bob")
    response = await admin("POST", "/admin/revocations", {"sub": "alice"})
    assert response.code == 201
    assert body_json(response)["iss"] is None  # every issuer
    assert await status(fetch, alice1) == 401
    assert await status(fetch, alice2) == 401
    assert await status(fetch, bob) == 200
    refused = body_json(await fetch("/test-auth", token=alice1))
    assert refused["error_description"].startswith(
        "The token has been revoked: tokens of its subject issued up to "
    )


async def test_a_new_token_after_a_subject_revocation_works_past_the_leeway(fetch, admin, services):
    await admin("POST", "/admin/revocations", {"sub": "alice"})
    leeway = services.settings.leeway
    within = services.issuer.claims_for("alice")
    within["iat"] += 2  # stamped after the cutoff, but a fast clock could have done that
    assert await status(fetch, services.issuer.sign(within).token) == 401
    # Once past the leeway window a new token works: a cutoff that far back stands in
    # for waiting that long (the verifier refuses an iat beyond now + leeway).
    await services.revocations.revoke_subject("bob", before=time.time() - leeway - 1)
    later = services.issuer.claims_for("bob")
    assert await status(fetch, services.issuer.sign(later).token) == 200


@every_store
async def test_revoke_by_client(fetch, issue_token, admin):
    leaky = issue_token("alice", client_id="leaky-app")
    leaky_bob = issue_token("bob", client_id="leaky-app")
    fine = issue_token("alice", client_id="good-app")
    response = await admin("POST", "/admin/revocations", {"client_id": "leaky-app"})
    assert response.code == 201
    assert body_json(response)["kind"] == "client"
    assert await status(fetch, leaky) == 401
    assert await status(fetch, leaky_bob) == 401
    assert await status(fetch, fine) == 200


@every_store
async def test_revoke_by_whole_token(fetch, issue_token, admin):
    token, other = issue_token("alice"), issue_token("alice")
    response = await admin("POST", "/admin/revocations", {"token": token})
    assert response.code == 201
    entry = body_json(response)
    assert (entry["kind"], entry["value"]) == ("jti", jti_of(token))
    assert entry["expires_at"] == pytest.approx(parse_compact(token).claims["exp"] + 31)
    assert await status(fetch, token) == 401
    assert await status(fetch, other) == 200


async def test_a_revoked_admin_token_loses_admin_access(admin, admin_token):
    assert (await admin("POST", "/admin/revocations", {"token": admin_token})).code == 201
    assert (await admin("GET", "/admin/revocations")).code == 401


# -- undo, list, audit -----------------------------------------------------------------------


@every_store
async def test_unrevoke_restores_the_token(fetch, issue_token, admin):
    token = issue_token("alice")
    entry = body_json(await admin("POST", "/admin/revocations", {"jti": jti_of(token)}))
    assert await status(fetch, token) == 401
    response = await admin("DELETE", f"/admin/revocations/{entry['id']}?reason=mistake")
    assert response.code == 204
    assert response.body == b""
    assert await status(fetch, token) == 200
    again = await admin("DELETE", f"/admin/revocations/{entry['id']}")
    assert again.code == 404
    assert body_json(again)["error"] == "not_found"


async def test_unrevoke_reason_is_checked(admin):
    entry = body_json(await admin("POST", "/admin/revocations", {"sub": "alice"}))
    for query in ("reason=" + "x" * 501, "reason=a&reason=b"):
        response = await admin("DELETE", f"/admin/revocations/{entry['id']}?{query}")
        assert response.code == 400, query
    assert (await admin("GET", "/admin/revocations")).code == 200
    assert len(body_json(await admin("GET", "/admin/revocations"))["revocations"]) == 1


async def test_unknown_or_malformed_id_is_404(admin):
    assert (await admin("DELETE", "/admin/revocations/nope")).code == 404
    assert (await admin("DELETE", "/admin/revocations/no%20pe")).code == 404


@every_store
async def test_list_newest_first_with_cursor_pagination(admin):
    ids = []
    for sub in ("a", "b", "c"):
        ids.append(body_json(await admin("POST", "/admin/revocations", {"sub": sub}))["id"])
    first = body_json(await admin("GET", "/admin/revocations?limit=2"))
    assert [e["id"] for e in first["revocations"]] == [ids[2], ids[1]]
    assert first["next_cursor"]
    rest = body_json(
        await admin("GET", f"/admin/revocations?limit=2&cursor={first['next_cursor']}")
    )
    assert [e["id"] for e in rest["revocations"]] == [ids[0]]
    assert rest["next_cursor"] is None


@pytest.mark.parametrize("route", ["/admin/revocations", "/admin/audit"])
async def test_list_rejects_bad_parameters(admin, route):
    for query in ["limit=0", "limit=501", "limit=x", "limit=1&limit=2", "cursor=abc", "cursor=-1"]:
        response = await admin("GET", f"{route}?{query}")
        assert response.code == 400, query
        assert body_json(response)["error"] == "invalid_request"


@every_store
async def test_expired_entries_disappear(admin, services, issue_token):
    token = issue_token("alice", ttl=60)
    exp = parse_compact(token).claims["exp"]
    await admin("POST", "/admin/revocations", {"jti": jti_of(token), "exp": exp})
    await admin("POST", "/admin/revocations", {"sub": "bob"})
    assert len(body_json(await admin("GET", "/admin/revocations"))["revocations"]) == 2
    # Past the jti entry's expiry (exp + leeway + 1), before the subject entry's.
    store = getattr(services.revocations, "store", services.revocations)  # behind the mirror
    store.clock = lambda: exp + 31
    listed = body_json(await admin("GET", "/admin/revocations"))["revocations"]
    assert [e["kind"] for e in listed] == ["sub"]


@every_store
async def test_audit_log_records_who_what_when_why(admin):
    before = time.time()
    entry = body_json(
        await admin("POST", "/admin/revocations", {"sub": "alice", "reason": "phished"})
    )
    await admin("DELETE", f"/admin/revocations/{entry['id']}?reason=false+alarm")
    response = await admin("GET", "/admin/audit")
    assert response.code == 200
    records = body_json(response)["audit"]
    assert [(r["action"], r["actor"], r["reason"]) for r in records] == [
        ("unrevoke", "root", "false alarm"),
        ("revoke", "root", "phished"),
    ]
    assert all(r["entry_id"] == entry["id"] and r["value"] == "alice" for r in records)
    assert all(before - 1 <= r["at"] <= time.time() + 1 for r in records)


# -- refusals --------------------------------------------------------------------------------

ADMIN_CALLS = [
    ("GET", "/admin/revocations"),
    ("POST", "/admin/revocations"),
    ("DELETE", "/admin/revocations/abc"),
    ("GET", "/admin/audit"),
]


async def test_admin_without_token_is_401(fetch):
    for method, path in ADMIN_CALLS:
        body = json.dumps({"sub": "alice"}) if method == "POST" else None
        response = await fetch(path, method=method, body=body)
        assert response.code == 401, (method, path)
        assert response.headers["WWW-Authenticate"] == BARE_CHALLENGE


async def test_admin_without_admin_scope_is_403(admin, issue_token, services):
    user = issue_token("mallory", scopes=["read:catchphrases"])
    for method, path in ADMIN_CALLS:
        payload = {"sub": "alice"} if method == "POST" else None
        response = await admin(method, path, payload, token=user)
        assert response.code == 403, (method, path)
        assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
        assert 'scope="admin"' in response.headers["WWW-Authenticate"]
    assert (await services.revocations.list_entries()).entries == []


BAD_REQUESTS = [
    ("{not json", "JSON object"),
    ("[1, 2]", "JSON object"),
    ("", "JSON object"),
    (b"\xff\xfe", "JSON object"),
    ('{"sub": "a"}'.encode("utf-16"), "JSON object"),  # JSON is UTF-8 (RFC 8259 §8.1)
    ('{"sub": "a", "sub": "b"}', "JSON object"),
    ("{}", "exactly one of"),
    ('{"sub": "a", "jti": "b"}', "exactly one of"),
    ('{"sub": "a", "admin": true}', "unknown field 'admin'"),
    ('{"sub": ""}', "'sub' must be a non-empty string"),
    ('{"sub": 7}', "'sub' must be a non-empty string"),
    ('{"sub": "a\\u0000b"}', "control characters"),
    ('{"sub": "' + "x" * 257 + '"}', "at most 256"),
    ('{"sub": "a", "reason": "' + "x" * 501 + '"}', "at most 500"),
    ('{"sub": "a", "exp": 5}', "'exp' goes only with 'jti'"),
    ('{"jti": "a", "exp": "soon"}', "'exp' must be a number"),
    ('{"jti": "a", "exp": true}', "'exp' must be a number"),
    ('{"jti": "a", "exp": 5}', "already expired"),
    ('{"token": "abc", "iss": "x"}', "read from the token"),
    ('{"token": "not-a-token"}', "cannot be verified"),
]


async def test_bad_revocation_requests_are_400_with_a_clear_message(admin, services):
    for payload, message in BAD_REQUESTS:
        response = await admin("POST", "/admin/revocations", raw=payload)
        assert response.code == 400, payload
        body = body_json(response)
        assert body["error"] == "invalid_request"
        assert message in body["error_description"], (payload, body)
    assert (await services.revocations.list_entries()).entries == []


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        (None, 415),
        ("application/x-www-form-urlencoded", 415),
        ("text/plain", 415),
        ("application/jsonx", 415),
        ("Application/JSON; charset=utf-8", 201),
    ],
)
async def test_a_revocation_must_be_sent_as_json(
    fetch, admin_token, services, content_type, status
):
    response = await fetch(
        "/admin/revocations",
        method="POST",
        body=json.dumps({"sub": "alice"}),
        headers={"Content-Type": content_type} if content_type else {},
        token=admin_token,
    )
    assert response.code == status
    if status == 415:
        assert body_json(response)["error"] == "unsupported_media_type"
        assert "application/json" in body_json(response)["error_description"]
        assert (await services.revocations.list_entries()).entries == []


async def test_revoking_a_forged_token_is_400(admin, issue_token):
    forged = issue_token("alice")[:-4] + "AAAA"
    response = await admin("POST", "/admin/revocations", {"token": forged})
    assert response.code == 400
    assert body_json(response)["error_description"] == (
        "the token cannot be verified: The token signature is invalid"
    )


async def test_revoking_an_expired_token_is_400(admin, services):
    claims = services.issuer.claims_for("alice")
    claims["iat"] -= 7200
    claims["exp"] = claims["iat"] + 60
    response = await admin(
        "POST", "/admin/revocations", {"token": services.issuer.sign(claims).token}
    )
    assert response.code == 400
    assert "expired" in body_json(response)["error_description"]


async def test_a_token_outliving_the_denylist_is_refused(fetch, issue_token, services):
    too_long = issue_token("alice", ttl=services.settings.max_token_ttl + 3600)
    response = await fetch("/test-auth", token=too_long)
    assert response.code == 401
    assert body_json(response)["error_description"] == (
        "The token lives longer than this service accepts"
    )


@pytest.mark.parametrize("settings_overrides", [{"JOTGUARD_ADMIN_SCOPE": "ops:revoke"}])
async def test_the_admin_scope_is_a_setting(admin, issue_token):
    plain_admin = issue_token("root", scopes=["admin"])
    ops = issue_token("ops", scopes=["ops:revoke"])
    assert (await admin("GET", "/admin/revocations", token=plain_admin)).code == 403
    assert (await admin("GET", "/admin/revocations", token=ops)).code == 200
