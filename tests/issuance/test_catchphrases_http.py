"""The demo API through HTTP: scopes before lookups, CRUD, validation."""

from __future__ import annotations

import json

import pytest

from tests.helpers import BARE_CHALLENGE
from tests.issuance.conftest import body

READ, WRITE, DELETE = "read:catchphrases", "write:catchphrases", "delete:catchphrases"


@pytest.fixture
def call(fetch, issue_token):
    """``await call("GET", "/api/...", scopes=[...], json=...)``."""

    async def do(method, path, *, scopes=(READ, WRITE, DELETE), payload=None, raw=None, **kw):
        token = issue_token("alice", scopes=list(scopes))
        headers = kw.pop("headers", {})
        content = raw
        if payload is not None:
            content = json.dumps(payload)
            headers.setdefault("Content-Type", "application/json")
        if method in {"POST", "PUT"} and content is None:
            content = ""
        return await fetch(path, method=method, body=content, token=token, headers=headers)

    return do


async def create(call, text="I'll be back", **extra):
    response = await call("POST", "/api/catchphrases", payload={"catchphrase": text, **extra})
    assert response.code == 201, response.body
    return body(response)


async def test_crud_round_trip(call):
    item = await create(call, "May the Force be with you", movie="Star Wars")
    assert item["created_by"] == "alice"

    got = body(await call("GET", f"/api/catchphrases/{item['id']}", scopes=[READ]))
    assert got == item

    replaced = await call(
        "PUT", f"/api/catchphrases/{item['id']}", scopes=[WRITE], payload={"catchphrase": "Hi"}
    )
    assert replaced.code == 200
    assert body(replaced)["catchphrase"] == "Hi"
    assert body(replaced)["movie"] is None  # PUT replaces the whole item

    deleted = await call("DELETE", f"/api/catchphrases/{item['id']}", scopes=[DELETE])
    assert deleted.code == 204
    assert (await call("GET", f"/api/catchphrases/{item['id']}")).code == 404


async def test_post_answers_201_with_location(call):
    response = await call("POST", "/api/catchphrases", payload={"catchphrase": "Here's Johnny!"})
    assert response.code == 201
    assert response.headers["Location"] == f"/api/catchphrases/{body(response)['id']}"


async def test_list_pages_in_creation_order(call):
    ids = [(await create(call, f"line {n}"))["id"] for n in range(5)]

    first = body(await call("GET", "/api/catchphrases?limit=2", scopes=[READ]))
    assert [c["id"] for c in first["catchphrases"]] == ids[:2]
    second = body(await call("GET", f"/api/catchphrases?limit=2&after={first['next']}"))
    assert [c["id"] for c in second["catchphrases"]] == ids[2:4]
    last = body(await call("GET", f"/api/catchphrases?limit=2&after={second['next']}"))
    assert [c["id"] for c in last["catchphrases"]] == ids[4:]
    assert last["next"] is None


@pytest.mark.parametrize("limit", ["0", "101", "-1", "ten", "1.5"])
async def test_bad_limit_is_400(limit, call):
    response = await call("GET", f"/api/catchphrases?limit={limit}")
    assert response.code == 400
    assert "limit" in body(response)["error_description"]


# -- scopes come before any lookup -------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "needed", "payload"),
    [
        ("GET", READ, None),
        ("PUT", WRITE, {"catchphrase": "x"}),
        ("DELETE", DELETE, None),
    ],
)
async def test_missing_scope_is_403_whether_or_not_the_id_exists(method, needed, payload, call):
    existing = (await create(call))["id"]
    others = [s for s in (READ, WRITE, DELETE) if s != needed]
    answers = []
    for item_id in (existing, "no-such-id"):
        response = await call(
            method, f"/api/catchphrases/{item_id}", scopes=others, payload=payload
        )
        assert response.code == 403
        assert body(response)["error"] == "insufficient_scope"
        assert f'scope="{needed}"' in response.headers["WWW-Authenticate"]
        answers.append(response.body)
    assert answers[0] == answers[1]


async def test_collection_needs_read_to_list_and_write_to_post(call):
    assert (await call("GET", "/api/catchphrases", scopes=[WRITE])).code == 403
    refused = await call("POST", "/api/catchphrases", scopes=[READ], payload={"catchphrase": "x"})
    assert refused.code == 403


async def test_no_token_is_401(fetch):
    response = await fetch("/api/catchphrases")
    assert response.code == 401
    assert response.headers["WWW-Authenticate"] == BARE_CHALLENGE


async def test_editor_may_edit_but_not_delete_while_admin_may_do_both(call):
    """The tutorial's point: one user edits, another edits and deletes."""
    item = (await create(call))["id"]
    editor, admin = [READ, WRITE], [READ, WRITE, DELETE]
    path = f"/api/catchphrases/{item}"
    assert (await call("PUT", path, scopes=editor, payload={"catchphrase": "a"})).code == 200
    assert (await call("DELETE", path, scopes=editor)).code == 403
    assert (await call("PUT", path, scopes=admin, payload={"catchphrase": "b"})).code == 200
    assert (await call("DELETE", path, scopes=admin)).code == 204


# -- 404 and validation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "payload"), [("GET", None), ("PUT", {"catchphrase": "x"}), ("DELETE", None)]
)
async def test_unknown_id_is_404(method, payload, call):
    response = await call(method, "/api/catchphrases/does-not-exist", payload=payload)
    assert response.code == 404
    assert body(response)["error"] == "not_found"


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ("{not json", "not valid JSON"),
        ("", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('"text"', "JSON object"),
        ("{}", "'catchphrase' is required"),
        ('{"catchphrase": null}', "'catchphrase' is required"),
        ('{"catchphrase": "   "}', "must not be empty"),
        ('{"catchphrase": 42}', "must be a string"),
        ('{"catchphrase": "x", "movie": ["a"]}', "'movie' must be a string"),
        ('{"catchphrase": "x", "rating": 5}', "Unknown field 'rating'"),
        ('{"catchphrase": "' + "x" * 281 + '"}', "longer than 280"),
        ("[" * 100000 + "]" * 100000, "larger than 16 KiB"),
    ],
)
@pytest.mark.parametrize("method", ["POST", "PUT"])
async def test_bad_bodies_are_400_with_a_clear_message(method, raw, needle, call):
    path = (
        "/api/catchphrases"
        if method == "POST"
        else "/api/catchphrases/" + (await create(call))["id"]
    )
    response = await call(method, path, raw=raw, headers={"Content-Type": "application/json"})
    assert response.code in (400, 413), response.body
    assert needle in body(response)["error_description"]


async def test_deeply_nested_json_is_400(call):
    raw = "[" * 5000 + "]" * 5000
    response = await call(
        "POST", "/api/catchphrases", raw=raw, headers={"Content-Type": "application/json"}
    )
    assert response.code == 400


async def test_non_json_content_type_is_415(call):
    response = await call(
        "POST",
        "/api/catchphrases",
        raw="catchphrase=hi",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.code == 415
    assert body(response)["error"] == "unsupported_media_type"


async def test_invalid_utf8_body_is_400(call):
    response = await call(
        "POST",
        "/api/catchphrases",
        raw=b'{"catchphrase": "\xff"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.code == 400
