"""``tox -e fuzz`` fails when an operation never got past authentication or the rate limit,
in the Bearer pass or (for an operation that takes DPoP) in the DPoP pass; the DPoP pass's
proofs are good for the request they go with."""

from __future__ import annotations

import io
import logging
import time
from collections import Counter
from unittest import mock

import pytest

from backends.dpop import DPoPPolicy, InvalidDPoPProof, generate_key, jwk_thumbprint, verify_proof
from tests.fuzz import answers_in, never_reached, operations_in
from tests.fuzz_dpop import with_proof
from webapp.service.logs import TextFormatter

DOCUMENT = {
    "paths": {
        "/test": {"get": {"responses": {}}},
        "/notes/{id}": {
            "parameters": [],  # not an operation
            "get": {"security": [{"bearerAuth": ["read"]}, {"dpopAuth": ["read"]}]},
            "delete": {"security": [{"bearerAuth": ["delete"]}]},
            "put": {"security": [{"bearerAuth": ["write"]}, {"dpopAuth": ["write"]}]},
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
    assert operations_in(DOCUMENT, dpop=True) == {
        ("GET", "/notes/{id}"): True,
        ("PUT", "/notes/{id}"): True,
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
        {(401, "revoked", None): 1, (403, "insufficient_scope", None): 1, (429, None, None): 1}
    )
    assert answers[("GET", "/notes/{id}")] == Counter({(404, "success", "fuzz"): 1})
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
    assert answers[("GET", "/test-auth")] == Counter(
        {(200, "success", "alice"): 1, (401, "missing", None): 1}
    )


def test_the_dpop_pass_counts_only_its_own_tokens_answers():
    dpop_operations = operations_in(DOCUMENT, dpop=True)
    lines = [
        # The Bearer pass got past authentication on both...
        line("GET", "/notes/{id}", 200, " auth=success sub=fuzz"),
        line("PUT", "/notes/{id}", 200, " auth=success sub=fuzz"),
        # ...the DPoP pass on one: its proofs refused on the other.
        line("GET", "/notes/{id}", 404, " auth=success sub=fuzz-dpop"),
        line("PUT", "/notes/{id}", 401, " auth=dpop_htu error=invalid_dpop_proof"),
    ]
    answers = answers_in(lines)
    assert never_reached(dpop_operations, answers, "fuzz") == []
    assert never_reached(dpop_operations, answers, "fuzz-dpop") == [("PUT", "/notes/{id}")]
    # Without a subject, any token's answer counts (as before there were two passes).
    assert never_reached(dpop_operations, answers) == []


def test_the_dpop_pass_proof_is_for_its_request_only():
    key = generate_key("ES256")
    jwk = key.as_dict(private=True)
    url = "http://127.0.0.1:8888/api/catchphrases/a%20b"
    headers = with_proof({"dpop": "drawn by schemathesis", "X-Other": "1"}, "put", url, "tok", jwk)
    assert sorted(headers) == ["DPoP", "X-Other"]  # the drawn value is gone, the rest kept

    def verify(**request):
        request = {"method": "PUT", "url": url, "access_token": "tok", **request}
        return verify_proof(headers["DPoP"], policy=DPoPPolicy(), now=time.time(), **request)

    assert verify(url=url + "?q=1").jkt == jwk_thumbprint(key)  # htu leaves the query out
    for other in ({"method": "GET"}, {"url": url + "/x"}, {"access_token": "another"}):
        with pytest.raises(InvalidDPoPProof):
            verify(**other)
