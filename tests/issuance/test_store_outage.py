"""Issuance stores that cannot answer: 503 with Retry-After, never 500 or 401."""

from __future__ import annotations

import pytest

from tests.issuance.conftest import basic, body


@pytest.fixture(params=["sqlite", "mongodb"])
def settings_overrides(request, tmp_path):
    if request.param == "sqlite":
        blocker = tmp_path / "not-a-directory"
        blocker.write_text("")
        url = f"sqlite:///{blocker}/issuance.db"
    else:
        url = "mongodb://127.0.0.1:9/jotguard?serverSelectionTimeoutMS=300"
    return {"JOTGUARD_ISSUANCE_STORE": url}


def assert_unavailable(response):
    assert response.code == 503, response.body
    assert body(response)["error"] == "temporarily_unavailable"
    assert int(response.headers["Retry-After"]) > 0


async def test_token_endpoint_answers_503(fetch):
    response = await fetch(
        "/oauth/token",
        method="POST",
        body="grant_type=client_credentials",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": basic("some-client", "some-secret"),
        },
    )
    assert_unavailable(response)


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("GET", "/api/catchphrases", None),
        ("GET", "/api/catchphrases/abc", None),
        ("POST", "/api/catchphrases", '{"catchphrase": "Hasta la vista"}'),
        ("PUT", "/api/catchphrases/abc", '{"catchphrase": "Hasta la vista"}'),
        ("DELETE", "/api/catchphrases/abc", None),
    ],
)
async def test_demo_api_answers_503(method, path, payload, fetch, issue_token):
    token = issue_token(
        "alice", scopes=["read:catchphrases", "write:catchphrases", "delete:catchphrases"]
    )
    headers = {"Content-Type": "application/json"} if payload else {}
    response = await fetch(path, method=method, body=payload, token=token, headers=headers)
    assert_unavailable(response)
