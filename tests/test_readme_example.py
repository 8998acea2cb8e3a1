"""The README's "protect your own handler" example, run exactly as written there."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_example() -> str:
    text = README.read_text()
    match = re.search(
        r"<!-- example: protect-your-handler.*?-->\s*```python\n(.*?)```", text, re.DOTALL
    )
    assert match, "README lost its protect-your-handler example"
    return match.group(1)


@pytest.fixture
def app(services):
    namespace: dict = {}
    exec(compile(readme_example(), "README.md", "exec"), namespace)  # noqa: S102
    return namespace["make_app"](services.authenticator)


@pytest.fixture
def issue(services):
    issuer = services.issuer

    def make(scopes):
        return issuer.sign(issuer.claims_for("alice", scopes=scopes)).token

    return make


async def test_example_admits_a_token_with_the_scope(fetch, issue):
    response = await fetch("/hello", token=issue(["read:hello"]))
    assert response.code == 200
    assert json.loads(response.body) == {"hello": "alice"}


async def test_example_refuses_missing_scope_with_403(fetch, issue):
    response = await fetch("/hello", token=issue(["other"]))
    assert response.code == 403
    challenge = response.headers["WWW-Authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="read:hello"' in challenge


async def test_example_refuses_no_token_with_401(fetch):
    response = await fetch("/hello")
    assert response.code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="jotguard"'
