"""A grant in flight when its user or client is disabled cannot return a token that
survives it: the interleaving is driven step by step, with events, never sleeps.

The grant is held just after it read the account (as argon2 holds a real login for
hundreds of milliseconds), the account is disabled as ``jotguard users disable`` does,
and the grant then signs two seconds later than the disable's cutoff, as the login in
the issue did.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest

import backends.auth.local
from tests.issuance.conftest import PASSWORD, body
from webapp.service import lifecycle

LATER = 2.0


class Gate:
    """Holds the first call of a store method after it answered, until released."""

    def __init__(self, monkeypatch, store, method: str) -> None:
        self.reached = asyncio.Event()
        self.release = asyncio.Event()
        original = getattr(store, method)
        gate = self

        async def held(*args, **kwargs):
            result = await original(*args, **kwargs)
            if not gate.reached.is_set():
                gate.reached.set()
                await gate.release.wait()
            return result

        monkeypatch.setattr(store, method, held)


def sign_later(monkeypatch) -> None:
    """Every token signed from now on carries an iat two seconds after the real time."""
    real = time.time
    monkeypatch.setattr(backends.auth.local, "time", SimpleNamespace(time=lambda: real() + LATER))


async def interleave(monkeypatch, gate: Gate, request, disable) -> object:
    in_flight = asyncio.ensure_future(request)
    await asyncio.wait_for(gate.reached.wait(), 30)
    await disable()
    sign_later(monkeypatch)
    gate.release.set()
    return await asyncio.wait_for(in_flight, 30)


@pytest.fixture
def login_across(monkeypatch, issuance, make_client, make_user, password_grant):
    """``await login_across(change)``: alice's password grant, held once it read her
    account while ``change(issuance, "alice", actor=...)`` runs; its response."""

    async def run(change) -> object:
        client = await make_client()
        await make_user()
        gate = Gate(monkeypatch, issuance.store, "get_user_by_name")
        return await interleave(
            monkeypatch,
            gate,
            password_grant(client),
            lambda: change(issuance, "alice", actor="test"),
        )

    return run


async def test_a_login_in_flight_across_users_disable_gets_no_token(issuance, login_across):
    response = await login_across(lifecycle.disable_user)

    assert response.code == 400, response.body
    assert body(response)["error"] == "invalid_grant"
    assert "access_token" not in body(response)
    # Its family, stored before the refusal, is revoked with everything in it.
    families = await issuance.store.revoke_families_of(
        (await issuance.store.get_user_by_name("alice")).user_id, now=time.time()
    )
    assert families
    assert all(f.revoked_at is not None for f in families)


async def test_a_refresh_in_flight_across_users_disable_gets_no_token(
    monkeypatch, issuance, make_client, make_user, password_grant, token_request
):
    client = await make_client()
    await make_user()
    tokens = body(await password_grant(client))
    gate = Gate(monkeypatch, issuance.store, "get_user")
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}

    response = await interleave(
        monkeypatch,
        gate,
        token_request(refresh, client=client),
        lambda: lifecycle.disable_user(issuance, "alice", actor="test"),
    )

    assert response.code == 400, response.body
    assert body(response)["error"] == "invalid_grant"
    # Enabled again, the login it started stays over: its refresh tokens are revoked.
    await lifecycle.enable_user(issuance, "alice", actor="test")
    again = await token_request(refresh, client=client)
    assert body(again)["error"] == "invalid_grant"


async def test_a_client_credentials_grant_in_flight_across_clients_disable_gets_no_token(
    monkeypatch, issuance, make_client, token_request
):
    client_id, secret = await make_client()
    gate = Gate(monkeypatch, issuance.store, "get_client")

    response = await interleave(
        monkeypatch,
        gate,
        token_request({"grant_type": "client_credentials"}, client=(client_id, secret)),
        lambda: lifecycle.disable_client(issuance, client_id, actor="test"),
    )

    assert response.code == 401, response.body
    assert body(response)["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


async def test_a_login_in_flight_across_users_delete_gets_no_token(login_across):
    response = await login_across(lifecycle.delete_user)

    assert response.code == 400
    assert body(response)["error"] == "invalid_grant"


@pytest.mark.parametrize("grants", [("password",), ("password", "refresh_token")])
async def test_a_login_not_disabled_meanwhile_is_not_refused(
    issuance, make_client, make_user, password_grant, fetch, grants
):
    client = await make_client(grants=grants)
    await make_user()
    response = await password_grant(client, password=PASSWORD)
    assert response.code == 200
    assert (await fetch("/test-auth", token=body(response)["access_token"])).code == 200
