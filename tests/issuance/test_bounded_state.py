"""Made-up client ids cost nothing to keep: budgets are per address until a client is
verified, ``client_id`` is never read from the query string, and a refused request
charges nothing further (shipped default limits, behind a trusted proxy)."""

from __future__ import annotations

import secrets

import pytest

from tests.conftest import default_limits
from tests.issuance.conftest import basic, body
from tests.issuance.test_get_token_local import CLIENT_ID, SECRET, register

FROM = {"X-Forwarded-For": "203.0.113.7"}


def live_keys(services) -> int:
    limits = services.rate_limits
    policies = [p for p in limits.policies.values() if p is not None]
    policies += [limits.failed_auth, limits.preauth, limits.password, limits.password_ip]
    return sum(limits.limiter.keys.live(p) for p in policies if p is not None)


def made_up_token_request() -> dict:
    made_up = secrets.token_hex(16)
    return {
        "method": "POST",
        "body": "grant_type=client_credentials",
        "headers": {
            **FROM,
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": basic(made_up, "secret"),
        },
    }


class TestGetTokenOn:
    @pytest.fixture
    def settings_overrides(self):
        return {
            **default_limits(),
            "JOTGUARD_TRUSTED_PROXIES": "127.0.0.1",
            "JOTGUARD_GET_TOKEN_CLIENT_ID": CLIENT_ID,
            "JOTGUARD_GET_TOKEN_CLIENT_SECRET": SECRET,
        }

    async def test_made_up_client_ids_keep_no_counters_of_their_own(self, fetch, services):
        await register(services.issuance)
        codes = []
        for _ in range(300):
            made_up = secrets.token_hex(16)
            codes.append((await fetch(f"/get-token?client_id={made_up}", headers=FROM)).code)
            codes.append((await fetch("/oauth/token", **made_up_token_request())).code)
        assert codes.count(200) == 10  # /get-token: 10/minute for the address
        assert codes.count(401) == 10  # made-up clients: 10 failures for the address
        assert codes.count(429) == 580
        # Every counter is the address's: a handful, however many ids were made up.
        assert live_keys(services) <= 4

    async def test_rotating_the_query_client_id_opens_no_new_token_budget(self, fetch, services):
        await register(services.issuance)
        answers = [
            await fetch(f"/get-token?client_id={secrets.token_hex(8)}", headers=FROM)
            for _ in range(12)
        ]
        assert [a.code for a in answers] == [200] * 10 + [429] * 2
        assert answers[-1].headers["RateLimit-Policy"].startswith('"token-60s";q=10;w=60')
        elsewhere = await fetch("/get-token", headers={"X-Forwarded-For": "198.51.100.9"})
        assert elsewhere.code == 200


class TestGetTokenOff:
    @pytest.fixture
    def settings_overrides(self):
        return {**default_limits(), "JOTGUARD_TRUSTED_PROXIES": "127.0.0.1"}

    async def test_a_disabled_get_token_is_counted_as_an_unknown_path(self, fetch, services):
        answers = [
            await fetch(f"/get-token?client_id={secrets.token_hex(8)}", headers=FROM)
            for _ in range(20)
        ]
        assert {a.code for a in answers} == {404}
        assert body(answers[0])["error"] == "not_found"
        unknown_path = await fetch("/no-such-route", headers=FROM)
        assert unknown_path.headers["RateLimit-Policy"] == answers[0].headers["RateLimit-Policy"]
        limits = services.rate_limits
        assert limits.limiter.keys.live(limits.policies["token"]) == 0
