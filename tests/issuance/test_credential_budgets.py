"""Credential checks against the shipped default limits, behind a trusted proxy.

Client-secret and password checks hold a slot of their failure budgets while they
run, so a burst is never checked beyond the budget; failed passwords count per
account (client + username, from any address) and only coarsely per address, so one
user's typos do not lock out the other users of a backend; token budgets count per
client and user; introspection has its own generous budget.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from backends.issuance.tokens import hash_refresh_token
from tests.conftest import default_limits
from tests.issuance.conftest import basic, body

ALICE_NET = "203.0.113.10"
ELSEWHERE = "198.51.100.20"


@pytest.fixture
def settings_overrides() -> dict[str, str]:
    return {**default_limits(), "JOTGUARD_TRUSTED_PROXIES": "127.0.0.1"}


@pytest.fixture
async def wide_client() -> AsyncIterator[AsyncHTTPClient]:
    """A client that really keeps 100 requests in flight (the default keeps 10)."""
    client = AsyncHTTPClient(force_instance=True, max_clients=100)
    yield client
    client.close()


@pytest.fixture
def post(wide_client: AsyncHTTPClient, base_url: str) -> Callable[..., Any]:
    """``await post(form, client=(id, secret), ip=..., path=...)`` from a proxied address."""

    async def send(
        form: dict[str, str],
        *,
        client: tuple[str, str],
        ip: str = ALICE_NET,
        path: str = "/oauth/token",
    ) -> HTTPResponse:
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": basic(*client),
            "X-Forwarded-For": ip,
        }
        return await wide_client.fetch(
            base_url + path, method="POST", body=urlencode(form), headers=headers, raise_error=False
        )

    return send


def login(username: str, password: str) -> dict[str, str]:
    return {"grant_type": "password", "username": username, "password": password}


@pytest.fixture
def secret_checks(issuance, monkeypatch) -> list[str]:
    """The secrets every client-secret check was asked about."""
    checked: list[str] = []
    secrets = issuance.tokens.client_secrets
    verify = secrets.verify

    async def counting(stored, secret):
        checked.append(secret)
        return await verify(stored, secret)

    monkeypatch.setattr(secrets, "verify", counting)
    return checked


def assert_rate_limited(response: HTTPResponse, policy: str) -> None:
    assert response.code == 429
    assert body(response)["error"] == "rate_limited"
    assert int(response.headers["Retry-After"]) >= 1
    assert f'"{policy}-60s"' in response.headers["RateLimit-Policy"]


# --- client secrets: a burst is checked no further than the failed-auth budget ----------


async def test_a_burst_of_bad_client_credentials_is_checked_only_up_to_the_budget(
    make_client, post, secret_checks
):
    client_id, secret = await make_client()
    burst = [
        post({"grant_type": "client_credentials"}, client=(client_id, f"guess-{n}"))
        for n in range(60)
    ]
    # An honest client elsewhere, sent in the middle of the burst.
    honest = post({"grant_type": "client_credentials"}, client=(client_id, secret), ip=ELSEWHERE)
    results = await asyncio.gather(*burst[:30], honest, *burst[30:])
    honest_answer = results.pop(30)
    answers = results

    codes = [a.code for a in answers]
    assert codes.count(401) == 10  # JOTGUARD_RATELIMIT_FAILED_AUTH: 10/minute
    assert codes.count(429) == 50
    assert len([s for s in secret_checks if s.startswith("guess-")]) == 10
    refused = next(a for a in answers if a.code == 429)
    assert_rate_limited(refused, "failed-auth")
    assert honest_answer.code == 200
    assert body(honest_answer)["token_type"] == "Bearer"


async def test_once_the_budget_is_spent_even_the_right_secret_waits(make_client, post):
    client_id, secret = await make_client()
    for n in range(10):
        assert (
            await post({"grant_type": "client_credentials"}, client=(client_id, f"x{n}"))
        ).code == 401
    refused = await post({"grant_type": "client_credentials"}, client=(client_id, secret))
    assert_rate_limited(refused, "failed-auth")


async def test_the_right_secret_gives_its_slot_back(make_client, post, services):
    client_id, secret = await make_client()
    answers = await asyncio.gather(
        *(
            post(
                {"grant_type": "client_credentials"}, client=(client_id, secret), ip=f"192.0.2.{n}"
            )
            for n in range(1, 31)
        )
    )
    assert [a.code for a in answers] == [200] * 30
    assert services.rate_limits.checks_in_flight == 0
    # Thirty successes from those addresses spent none of their failure budgets.
    limits = services.rate_limits
    usage = await limits.limiter.usage(limits.failed_auth, "ip:192.0.2.1")
    assert [q.remaining for q in usage] == [10, 100]


# --- passwords: per account and, coarsely, per address -----------------------------------


async def test_one_users_typos_do_not_lock_out_the_other_users_of_a_backend(
    make_client, make_user, post, services
):
    backend = await make_client()
    await make_user("alice")
    await make_user("carol")

    alice = [await post(login("alice", "typo"), client=backend) for _ in range(12)]
    assert [a.code for a in alice] == [400] * 5 + [429] * 7  # 5/minute per account
    assert body(alice[0])["error"] == "invalid_grant"
    assert_rate_limited(alice[-1], "password")

    carol = await post(login("carol", "correct horse battery"), client=backend)
    assert carol.code == 200
    # Nor is the backend's client locked out of its other grants.
    assert (await post({"grant_type": "client_credentials"}, client=backend)).code == 200
    # The seven refused attempts charged nothing further: five failures for the address.
    limits = services.rate_limits
    usage = await limits.limiter.usage(limits.password_ip, f"ip:{ALICE_NET}")
    assert [q.remaining for q in usage] == [25, 295]


async def test_one_account_cannot_be_guessed_from_many_addresses(make_client, make_user, post):
    backend = await make_client()
    await make_user("alice")
    codes = [
        (await post(login("alice", f"guess-{n}"), client=backend, ip=f"192.0.2.{n}")).code
        for n in range(1, 8)
    ]
    assert codes == [400] * 5 + [429] * 2
    # Not even the right password is checked now, from anywhere.
    right = await post(login("alice", "correct horse battery"), client=backend, ip=ELSEWHERE)
    assert_rate_limited(right, "password")


async def test_an_unknown_username_has_a_budget_like_a_real_one(make_client, make_user, post):
    # Otherwise the budget would tell which accounts exist.
    backend = await make_client()
    await make_user("alice")
    real = [(await post(login("alice", "x"), client=backend)).code for _ in range(6)]
    unknown = [(await post(login("nobody", "x"), client=backend)).code for _ in range(6)]
    assert real == unknown == [400] * 5 + [429]


async def test_the_account_budget_is_per_client(make_client, make_user, post):
    first, second = await make_client(), await make_client()
    await make_user("alice")
    for _ in range(5):
        await post(login("alice", "x"), client=first)
    assert (await post(login("alice", "x"), client=first)).code == 429
    assert (await post(login("alice", "correct horse battery"), client=second)).code == 200


async def test_a_concurrent_burst_for_one_account_is_hashed_only_up_to_its_budget(
    make_client, make_user, post, argon2_checks
):
    backend = await make_client()
    await make_user("alice")
    await make_user("carol")
    burst = [post(login("alice", f"guess-{n}"), client=backend) for n in range(20)]
    carol = post(login("carol", "correct horse battery"), client=backend, ip=ELSEWHERE)
    *answers, carol_answer = await asyncio.gather(*burst, carol)
    codes = [a.code for a in answers]
    assert codes.count(400) == 5
    assert codes.count(429) == 15
    assert len([s for _, s in argon2_checks if s.startswith("guess-")]) == 5
    assert carol_answer.code == 200


async def test_an_address_spraying_many_accounts_meets_the_coarse_guard(
    make_client, make_user, post
):
    backend = await make_client()
    await make_user("carol")
    codes = [(await post(login(f"user{n}", "x"), client=backend)).code for n in range(31)]
    assert codes == [400] * 30 + [429]  # JOTGUARD_RATELIMIT_PASSWORD_IP: 30/minute
    spent = await post(login("carol", "correct horse battery"), client=backend)
    assert_rate_limited(spent, "password-ip")
    assert (
        await post(login("carol", "correct horse battery"), client=backend, ip=ELSEWHERE)
    ).code == 200


# --- token budgets: per client and address, or per client and user ---------------------


async def test_a_backend_logs_in_many_users_and_each_user_has_a_token_budget(
    make_client, make_user, post
):
    backend = await make_client()
    for n in range(15):
        await make_user(f"user{n}")
    logins = [
        await post(login(f"user{n}", "correct horse battery"), client=backend) for n in range(15)
    ]
    assert [a.code for a in logins] == [200] * 15  # more than the 10/minute of one budget
    assert logins[0].headers["RateLimit-Policy"].startswith('"token-60s";q=10;w=60')
    again = [
        (await post(login("user0", "correct horse battery"), client=backend)).code
        for _ in range(10)
    ]
    assert again == [200] * 9 + [429]  # one user: 10 tokens a minute through one client


async def test_client_credentials_are_budgeted_per_client_and_address(make_client, post):
    client = await make_client()
    codes = [
        (await post({"grant_type": "client_credentials"}, client=client)).code for _ in range(11)
    ]
    assert codes == [200] * 10 + [429]
    refused = await post({"grant_type": "client_credentials"}, client=client)
    assert_rate_limited(refused, "token")
    other = await make_client()
    assert (await post({"grant_type": "client_credentials"}, client=other)).code == 200
    assert (
        await post({"grant_type": "client_credentials"}, client=client, ip=ELSEWHERE)
    ).code == 200


# --- introspection: a resource server's budget ----------------------------------------


async def test_a_resource_server_introspects_on_every_request(make_client, post, issue_token):
    resource_server = await make_client(scopes=("admin",), grants=("client_credentials",))
    token = issue_token("alice", scopes=["read:catchphrases"])
    answers = [
        await post({"token": token}, client=resource_server, path="/oauth/introspect")
        for _ in range(40)
    ]
    assert [a.code for a in answers] == [200] * 40
    assert all(json.loads(a.body)["active"] is True for a in answers)
    assert answers[-1].headers["RateLimit-Policy"] == '"introspect-60s";q=6000;w=60'
    revoked = await post({"token": "not-a-token"}, client=resource_server, path="/oauth/revoke")
    assert revoked.code == 200  # revocation shares that budget, not the token endpoint's
    assert revoked.headers["RateLimit-Policy"] == '"introspect-60s";q=6000;w=60'


async def test_a_refused_refresh_leaves_its_refresh_token_unspent(
    make_client, make_user, post, issuance
):
    backend = await make_client()
    await make_user("alice")
    grant = await post(login("alice", "correct horse battery"), client=backend)
    refresh = body(grant)["refresh_token"]
    for _ in range(9):  # with the login: ten tokens for alice through this client
        answer = await post(
            {"grant_type": "refresh_token", "refresh_token": refresh}, client=backend
        )
        assert answer.code == 200
        refresh = body(answer)["refresh_token"]
    refused = await post({"grant_type": "refresh_token", "refresh_token": refresh}, client=backend)
    assert_rate_limited(refused, "token")
    token, family = await issuance.store.get_refresh_token(hash_refresh_token(refresh))
    assert token.used_at is None  # refused before the rotation: retrying later still works
    assert family.revoked_at is None
