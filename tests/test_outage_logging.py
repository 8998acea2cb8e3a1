"""A store outage under load is two ERROR lines, as it starts and as it ends with how
many requests were refused meanwhile; each refusal is one access line at WARNING."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from tests import test_revocation_mirror

flaky = test_revocation_mirror.flaky  # the fixture: the app's store, wrapped to fail at will

REFUSALS = 25


@pytest.fixture
def settings_overrides(tmp_path):
    return {
        "JOTGUARD_REVOCATION_STORE": f"sqlite:///{tmp_path}/revocations.sqlite3",
        "JOTGUARD_REVOCATION_POLL_INTERVAL": "0.05",
        "JOTGUARD_REVOCATION_FRESHNESS": "0.5",
    }


async def answered(fetch, token, status, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = await fetch("/test-auth", token=token)
        if response.code == status:
            return response
        await asyncio.sleep(0.01)
    raise AssertionError(f"never answered {status}")


async def test_a_store_outage_logs_its_start_and_end_and_each_503_at_warning(
    flaky, fetch, issue_token, caplog
):
    token = issue_token("alice")
    assert (await fetch("/test-auth", token=token)).code == 200
    with caplog.at_level(logging.INFO):
        flaky[0].down = True
        await answered(fetch, token, 503)
        statuses = [(await fetch("/test-auth", token=token)).code for _ in range(REFUSALS)]
        assert statuses == [503] * REFUSALS
        flaky[0].down = False
        await answered(fetch, token, 200)

    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.name for r in errors] == ["jotguard.revocation"] * 2, [r.getMessage() for r in errors]
    start, end = (r.getMessage() for r in errors)
    assert start.startswith("revocation store unavailable: ")
    assert "503 once the revocation list is 0.5s old" in start
    refused = [
        r for r in caplog.records if r.name == "jotguard.access" and " 503 " in r.getMessage()
    ]
    assert len(refused) > REFUSALS
    assert {r.levelno for r in refused} == {logging.WARNING}
    assert end.startswith("revocation store available again after ")
    assert f"; {len(refused)} requests were refused (503) meanwhile" in end
