"""``tox -e fuzz`` fails when an operation never got past authentication or the rate limit."""

from __future__ import annotations

import io
import logging
from collections import Counter
from unittest import mock

from tests.fuzz import answers_in, never_reached, operations_in
from webapp.service.logs import TextFormatter

DOCUMENT = {
    "paths": {
        "/test": {"get": {"responses": {}}},
        "/notes/{id}": {
            "parameters": [],  # not an operation
            "get": {"security": [{"bearerAuth": ["read"]}]},
            "delete": {"security": [{"bearerAuth": ["delete"]}]},
            "put": {"security": [{"bearerAuth": ["write"]}]},
        },
        "/oauth/token": {"post": {}},
        "/never": {"get": {}},
    }
}


def line(method: str, route: str, status: int, extra: str = "") -> str:
    return (
        f"2026-01-01 00:00:00,000 INFO jotguard.access: {method} {route} {status} 0.4ms"
        f" request_id=abc client=127.0.0.1{extra}"
    )


def test_operations_and_whether_they_need_a_token():
    assert operations_in(DOCUMENT) == {
        ("GET", "/test"): False,
        ("GET", "/notes/{id}"): True,
        ("DELETE", "/notes/{id}"): True,
        ("PUT", "/notes/{id}"): True,
        ("POST", "/oauth/token"): False,
        ("GET", "/never"): False,
    }


def test_only_401_403_429_or_unauthenticated_answers_fail_the_run():
    lines = [
        line("GET", "/test", 200),
        line("GET", "/notes/{id}", 404, " auth=success sub=fuzz"),  # past authentication
        # Only refusals: the token revoked, a missing scope, the rate limit.
        line("DELETE", "/notes/{id}", 401, " auth=revoked error=invalid_token"),
        line("DELETE", "/notes/{id}", 403, " auth=insufficient_scope error=insufficient_scope"),
        line("DELETE", "/notes/{id}", 429, " error=rate_limited"),
        # A 400 for a malformed Authorization header never reached the handler.
        line("PUT", "/notes/{id}", 400, " auth=malformed error=invalid_request"),
        line("POST", "/oauth/token", 429, " error=rate_limited"),
        line("POST", "/oauth/token", 400, " error=invalid_request"),
        "2026-01-01 00:00:00,000 INFO jotguard: something else 200",
    ]
    answers = answers_in(lines)
    assert answers[("DELETE", "/notes/{id}")] == Counter(
        {(401, "revoked"): 1, (403, "insufficient_scope"): 1, (429, None): 1}
    )
    assert never_reached(operations_in(DOCUMENT), answers) == [
        ("DELETE", "/notes/{id}"),
        ("PUT", "/notes/{id}"),
        ("GET", "/never"),  # no answer at all
    ]


async def test_the_access_lines_jotguard_writes_are_read(fetch, issue_token):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    previous = root.level
    root.setLevel(logging.INFO)  # setLevel, not the attribute: it clears the loggers' caches
    try:
        with mock.patch.object(root, "handlers", [handler]):
            await fetch("/test-auth", token=issue_token("alice"))
            await fetch("/test-auth")
    finally:
        root.setLevel(previous)
    answers = answers_in(stream.getvalue().splitlines())
    assert answers[("GET", "/test-auth")] == Counter({(200, "success"): 1, (401, "missing"): 1})
