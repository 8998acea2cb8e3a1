"""The README's DPoP client example, run exactly as written there, against the service."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_example() -> dict:
    text = README.read_text()
    match = re.search(r"<!-- example: dpop-client.*?-->\s*```python\n(.*?)```", text, re.DOTALL)
    assert match, "README lost its dpop-client example"
    namespace: dict = {}
    exec(compile(match.group(1), "README.md", "exec"), namespace)  # noqa: S102
    return namespace


@pytest.fixture
def example(services):
    namespace = readme_example()
    claims = services.issuer.claims_for("alice")
    claims["cnf"] = {"jkt": namespace["jkt"]}
    namespace["token"] = services.issuer.sign(claims).token
    return namespace


async def test_the_example_calls_a_protected_route(example, base_url):
    response = await example["get_with_dpop"](base_url + "/test-auth?page=1", example["token"])
    assert response.code == 200
    assert response.body == b"This is a protected route."


@pytest.mark.parametrize("settings_overrides", [{"JOTGUARD_DPOP_NONCE": "on"}])
async def test_the_example_retries_with_the_servers_nonce(example, base_url):
    # A first proof without a nonce is refused in this mode: success means it retried.
    response = await example["get_with_dpop"](base_url + "/test-auth", example["token"])
    assert response.code == 200
