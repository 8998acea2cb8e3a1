"""JOTGUARD_REFRESH_REUSE_INTERVAL: within it a client presenting its just-used refresh
token again (two threads sharing one session) gets working tokens; after it, the reuse
is theft and the family is revoked. Time is injected, and the concurrent case is held
at a barrier: no sleeps."""

from __future__ import annotations

import asyncio

import pytest

from tests.clock import FakeClock
from tests.issuance.conftest import body
from tests.settings_support import refusal
from webapp.config.settings import Settings

INTERVAL = 5


@pytest.fixture
def settings_overrides():
    return {"JOTGUARD_REFRESH_REUSE_INTERVAL": str(INTERVAL)}


@pytest.fixture
def clock(issuance):
    clock = FakeClock()
    issuance.tokens.clock = clock
    return clock


async def refresh(token_request, client, refresh_token):
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return await token_request(form, client=client)


async def works(fetch, token_request, client, tokens) -> bool:
    access = await fetch("/test-auth", token=tokens["access_token"])
    again = await refresh(token_request, client, tokens["refresh_token"])
    return access.code == 200 and again.code == 200


async def test_a_reuse_within_the_interval_yields_working_tokens(
    clock, make_client, make_user, password_grant, token_request, fetch
):
    client = await make_client()
    await make_user()
    r1 = body(await password_grant(client))["refresh_token"]
    first = body(await refresh(token_request, client, r1))

    clock.advance(INTERVAL - 1)
    second = await refresh(token_request, client, r1)

    assert second.code == 200, second.body
    branch = body(second)
    assert branch["refresh_token"] not in (r1, first["refresh_token"])
    assert await works(fetch, token_request, client, branch)
    assert await works(fetch, token_request, client, first)


async def test_a_reuse_after_the_interval_is_theft(
    clock, make_client, make_user, password_grant, token_request, fetch
):
    client = await make_client()
    await make_user()
    login = body(await password_grant(client))
    first = body(await refresh(token_request, client, login["refresh_token"]))

    clock.advance(INTERVAL + 1)
    late = await refresh(token_request, client, login["refresh_token"])

    assert late.code == 400
    assert body(late)["error"] == "invalid_grant"
    # The whole family, as without an interval.
    assert body(await refresh(token_request, client, first["refresh_token"]))["error"] == (
        "invalid_grant"
    )
    for access in (login["access_token"], first["access_token"]):
        assert (await fetch("/test-auth", token=access)).code == 401


async def test_another_client_gains_nothing_from_the_interval(
    clock, make_client, make_user, password_grant, token_request
):
    client, other = await make_client(), await make_client()
    await make_user()
    r1 = body(await password_grant(client))["refresh_token"]
    await refresh(token_request, client, r1)
    stolen = await refresh(token_request, other, r1)
    assert body(stolen)["error"] == "invalid_grant"


async def test_concurrent_refreshes_with_one_token_both_succeed(
    monkeypatch, issuance, make_client, make_user, password_grant, token_request, fetch
):
    client = await make_client()
    await make_user()
    r1 = body(await password_grant(client))["refresh_token"]
    # Both requests read the token before either rotates it, as two threads do.
    arrived, both_read = [], asyncio.Event()
    original = issuance.store.get_refresh_token

    async def read_together(token_hash):
        found = await original(token_hash)
        if len(arrived) < 2:
            arrived.append(token_hash)
            if len(arrived) == 2:
                both_read.set()
            await both_read.wait()
        return found

    monkeypatch.setattr(issuance.store, "get_refresh_token", read_together)
    answers = await asyncio.gather(
        refresh(token_request, client, r1), refresh(token_request, client, r1)
    )
    monkeypatch.setattr(issuance.store, "get_refresh_token", original)

    assert [a.code for a in answers] == [200, 200], [a.body for a in answers]
    for answer in answers:
        assert await works(fetch, token_request, client, body(answer))


@pytest.mark.parametrize("value", ["-1", "301", "soon"])
def test_the_interval_is_bounded(value):
    refused = refusal("JOTGUARD_REFRESH_REUSE_INTERVAL", value)
    assert str(refused).startswith("JOTGUARD_REFRESH_REUSE_INTERVAL:")


def test_the_default_is_strict():
    assert Settings.load(environ={"JOTGUARD_ENV_FILE": "/nonexistent"}).refresh_reuse_interval == 0
