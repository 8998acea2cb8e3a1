"""The headers every answer carries, in the order clients have always seen them."""

from __future__ import annotations

import email.utils
import time

import pytest

# Header names as Tornado's client reads them off the wire, in order: what a client sees.
_DEFAULTS = ["Content-Type", "Date", "Cache-Control", "X-Content-Type-Options", "X-Request-Id"]
_QUOTA = ["Ratelimit-Policy", "Ratelimit"]


@pytest.mark.parametrize(
    ("path", "status", "after_defaults"),
    [
        ("/test", 200, [*_QUOTA, "Content-Length", "Connection"]),
        ("/test-auth", 401, [*_QUOTA, "Www-Authenticate", "Content-Length", "Connection"]),
        ("/nowhere", 404, [*_QUOTA, "Content-Length", "Connection"]),
    ],
)
async def test_headers_come_in_the_order_they_always_have(fetch, path, status, after_defaults):
    response = await fetch(path)
    assert response.code == status
    names = [name for name, _ in response.headers.get_all()]
    assert names == [*_DEFAULTS, *after_defaults]


async def test_an_error_after_headers_were_set_carries_the_defaults_once(fetch):
    # A bad token: the quota headers were set before send_error cleared the answer.
    response = await fetch("/test-auth", token="not-a-token")
    assert response.code == 401
    names = [name for name, _ in response.headers.get_all()]
    assert names[: len(_DEFAULTS)] == _DEFAULTS
    assert len(names) == len(set(names))
    assert response.headers["Content-Type"] == "application/json; charset=UTF-8"


@pytest.mark.parametrize(
    ("path", "status"),
    [("/test", 200), ("/test-auth", 401), ("/nowhere", 404), ("/healthz", 200)],
)
async def test_every_answer_carries_the_default_headers(fetch, path, status):
    before = time.time()
    response = await fetch(path)
    assert response.code == status
    headers = response.headers
    assert "Server" not in headers
    assert headers["Cache-Control"] == "no-store"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert len(headers["X-Request-ID"]) == 32
    date = email.utils.parsedate_to_datetime(headers["Date"]).timestamp()
    assert int(before) <= date <= time.time()


async def test_if_none_match_cannot_match_an_answer_without_an_etag(fetch):
    response = await fetch("/test", headers={"If-None-Match": "*"})
    assert response.code == 200
    assert response.body == b"This is an unprotected route."


async def test_the_key_set_still_revalidates(fetch):
    assert (await fetch("/.well-known/jwks.json", headers={"If-None-Match": "*"})).code == 304
