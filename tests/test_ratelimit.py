"""Rate limiting through HTTP, on the embedded memory storage (and a dead Redis)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import secrets
import time
from pathlib import Path

import pytest
from joserfc import jws
from tornado.httpclient import AsyncHTTPClient
from tornado.web import Application

from tests.helpers import BARE_CHALLENGE
from tests.ratelimit_support import TokenEndpoint, closed_port, limited_app
from webapp.service.app import routes
from webapp.service.services import Services

TIGHT = {
    "JOTGUARD_RATELIMIT_DEFAULT": "5/minute",
    "JOTGUARD_RATELIMIT_TOKEN": "5/minute",
    "JOTGUARD_RATELIMIT_ADMIN": "3/minute",
    "JOTGUARD_RATELIMIT_API": "3/minute",
    "JOTGUARD_RATELIMIT_FAILED_AUTH": "10/minute",
}
BEHIND_PROXY = {**TIGHT, "JOTGUARD_TRUSTED_PROXIES": "127.0.0.1"}


@pytest.fixture
def settings_overrides() -> dict[str, str]:
    return dict(TIGHT)


@pytest.fixture
def app(services: Services) -> Application:
    return limited_app(services)


def token_request(
    client_id: str = "app",
    secret: str = "right",  # noqa: S107 (the stand-in endpoint's test secret)
    *,
    ip: str | None = None,
    **headers: str,
) -> dict:
    if ip is not None:
        headers["X-Forwarded-For"] = ip
    return {
        "method": "POST",
        "body": f"client_id={client_id}&client_secret={secret}",
        "headers": headers,
    }


def remaining(response) -> int:
    match = re.search(r";r=(\d+)", response.headers["RateLimit"])
    assert match, response.headers["RateLimit"]
    return int(match.group(1))


def from_ip(address: str) -> dict[str, dict[str, str]]:
    return {"headers": {"X-Forwarded-For": address}}


# --- the token endpoint: 5/minute, then 429 ------------------------------------------


async def test_sixth_token_request_gets_429_with_retry_after_and_ratelimit_headers(fetch):
    answers = [await fetch("/limited/token", **token_request()) for _ in range(6)]

    assert [a.code for a in answers] == [200, 200, 200, 200, 200, 429]
    for left, answer in zip([4, 3, 2, 1, 0], answers[:5], strict=True):
        assert json.loads(answer.body)["access_token"] == "issued"
        assert answer.headers["RateLimit-Policy"] == '"token-60s";q=5;w=60'
        assert remaining(answer) == left
    refused = answers[5]
    assert json.loads(refused.body)["error"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["RateLimit-Policy"] == '"token-60s";q=5;w=60'
    assert refused.headers["RateLimit"] == f'"token-60s";r=0;t={refused.headers["Retry-After"]}'
    assert refused.headers["Content-Type"].startswith("application/json")


async def test_token_budget_is_per_client_id_and_ip(fetch, settings_overrides):
    for _ in range(5):
        assert (await fetch("/limited/token", **token_request("app"))).code == 200
    assert (await fetch("/limited/token", **token_request("app"))).code == 429

    assert (await fetch("/limited/token", **token_request("other-app"))).code == 200
    basic = base64.b64encode(b"third-app:right").decode()
    body = token_request("", Authorization=f"Basic {basic}")
    assert (await fetch("/limited/token", **body)).code == 200


@pytest.mark.parametrize("settings_overrides", [BEHIND_PROXY])
async def test_token_budget_of_a_client_id_is_separate_per_ip(fetch):
    for _ in range(5):
        answer = await fetch("/limited/token", **token_request("app", ip="203.0.113.1"))
        assert answer.code == 200
    refused = await fetch("/limited/token", **token_request("app", ip="203.0.113.1"))
    elsewhere = await fetch("/limited/token", **token_request("app", ip="203.0.113.2"))
    assert (refused.code, elsewhere.code) == (429, 200)


# --- per route after routing; probes never limited ------------------------------------


async def test_path_variants_of_one_route_share_one_budget(fetch):
    codes = [
        (await fetch(path)).code for path in ("/limited/api", "/limited/api/", "/limited/api/a")
    ]
    assert codes == [200, 200, 200]
    assert (await fetch("/limited/api/b")).code == 429
    # Another route keeps its own budget.
    assert (await fetch("/test")).code == 200


def test_every_jotguard_route_names_a_configured_policy(services):
    # A typo such as rate_limit = "tokens" would otherwise surface as a 500 at request time.
    for _, handler, _ in routes(services, {}):
        services.rate_limits.policy(handler.rate_limit)


async def test_health_probe_is_never_limited(fetch):
    answers = [await fetch("/healthz") for _ in range(12)]
    assert {a.code for a in answers} == {200}
    assert "RateLimit" not in answers[-1].headers


async def test_unprotected_route_reports_its_quota(fetch):
    answer = await fetch("/test")
    assert answer.code == 200
    assert answer.headers["RateLimit-Policy"] == '"default-60s";q=5;w=60'
    assert remaining(answer) == 4


async def test_anonymous_requests_to_protected_route_count_per_ip(fetch):
    answers = [await fetch("/test-auth") for _ in range(6)]
    assert [a.code for a in answers] == [401] * 5 + [429]
    # The 401s still report the quota, and keep their challenge.
    assert remaining(answers[0]) == 4
    assert answers[0].headers["WWW-Authenticate"] == BARE_CHALLENGE


async def test_malformed_authorization_counts_per_ip(fetch):
    answers = [await fetch("/test-auth", headers={"Authorization": "Bearer"}) for _ in range(6)]
    assert [a.code for a in answers] == [400] * 5 + [429]


# --- client IP: forwarding headers believed only from trusted proxies ---------------


async def test_spoofed_forwarded_for_from_untrusted_peer_opens_no_new_budget(fetch):
    for n in range(5):
        assert (await fetch("/test", **from_ip(f"198.51.100.{n}"))).code == 200
    answer = await fetch(
        "/test", headers={"X-Forwarded-For": "198.51.100.99", "X-Real-IP": "1.2.3.4"}
    )
    assert answer.code == 429


@pytest.mark.parametrize("settings_overrides", [BEHIND_PROXY])
async def test_forwarded_for_from_trusted_proxy_opens_a_budget_per_client(fetch):
    for _ in range(5):
        assert (await fetch("/test", **from_ip("203.0.113.7"))).code == 200
    assert (await fetch("/test", **from_ip("203.0.113.7"))).code == 429
    assert (await fetch("/test", **from_ip("203.0.113.8"))).code == 200
    # What the client wrote left of the proxy's entry is not believed.
    assert (await fetch("/test", **from_ip("192.0.2.1, 203.0.113.7"))).code == 429
    # Nor any header but the one configured (X-Forwarded-For by default).
    chosen = {"X-Forwarded-For": "203.0.113.7", "X-Real-IP": "203.0.113.9"}
    assert (await fetch("/test", headers=chosen)).code == 429


@pytest.mark.parametrize("settings_overrides", [BEHIND_PROXY])
async def test_ipv6_clients_are_counted_per_56_by_default(fetch):
    # Five /64s of one /56 (one customer's allocation) share its budget.
    for subnet in range(5):
        assert (await fetch("/test", **from_ip(f"2001:db8:0:1{subnet}::1"))).code == 200
    assert (await fetch("/test", **from_ip("2001:db8:0:ff:ffff::9"))).code == 429
    assert (await fetch("/test", **from_ip("2001:db8:0:100::1"))).code == 200


# --- authenticated requests: per principal -------------------------------------------


@pytest.mark.parametrize("settings_overrides", [BEHIND_PROXY])
async def test_authenticated_requests_count_per_user_not_per_ip(fetch, issue_token):
    alice, bob = issue_token("alice"), issue_token("bob")
    answers = [await fetch("/limited/admin", token=alice) for _ in range(3)]
    assert [a.code for a in answers] == [200, 200, 200]
    assert [remaining(a) for a in answers] == [2, 1, 0]
    assert answers[0].headers["RateLimit-Policy"] == '"admin-60s";q=3;w=60'

    assert (await fetch("/limited/admin", token=alice)).code == 429
    moved = await fetch("/limited/admin", token=alice, **from_ip("192.0.2.50"))
    assert moved.code == 429  # another network does not give alice another budget
    assert (await fetch("/limited/admin", token=bob)).code == 200  # same IP, own budget


# --- failed authentications and garbage tokens ---------------------------------------


def garbage_tokens(valid: str, count: int) -> list[str]:
    """Tokens that parse and name our issuer and key, with random signatures:
    without a limit, every one of them would reach a signature check."""
    header, payload, signature = valid.split(".")
    size = len(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    return [
        f"{header}.{payload}.{base64.urlsafe_b64encode(secrets.token_bytes(size)).rstrip(b'=').decode()}"
        for _ in range(count)
    ]


@pytest.fixture
def signature_checks(monkeypatch, services) -> dict[str, int]:
    """Counts signature verifications and calls into the authenticator."""
    counts = {"signatures": 0, "authentications": 0}
    validate = jws.validate_compact

    def counting_validate(*args, **kwargs):
        counts["signatures"] += 1
        return validate(*args, **kwargs)

    authenticate = services.authenticator.authenticate

    async def counting_authenticate(token):
        counts["authentications"] += 1
        return await authenticate(token)

    monkeypatch.setattr(jws, "validate_compact", counting_validate)
    monkeypatch.setattr(services.authenticator, "authenticate", counting_authenticate)
    return counts


async def test_thousand_garbage_tokens_are_cut_off_before_signature_checks(
    fetch, issue_token, signature_checks
):
    tokens = garbage_tokens(issue_token("alice"), 1000)
    codes = [(await fetch("/test-auth", token=token)).code for token in tokens]

    # The failed-authentication budget (10/minute) is spent by the first ten;
    # the other 990 are refused before any verification work at all.
    assert codes == [401] * 10 + [429] * 990
    assert signature_checks == {"signatures": 10, "authentications": 10}


@pytest.fixture
async def wide_client():
    """A client that really keeps 50 requests in flight (the default keeps 10)."""
    client = AsyncHTTPClient(force_instance=True, max_clients=50)
    yield client
    client.close()


async def test_concurrent_garbage_tokens_are_bounded_by_budget_plus_concurrency(
    wide_client, base_url, issue_token, signature_checks
):
    # A failure is known only after its check, so a burst of 50 in flight may all be
    # checked; once they are recorded, everything else from that IP is refused unchecked.
    async def send(token: str) -> int:
        headers = {"Authorization": f"Bearer {token}"}
        answer = await wide_client.fetch(
            base_url + "/test-auth", headers=headers, raise_error=False
        )
        return answer.code

    tokens = garbage_tokens(issue_token("alice"), 400)
    codes = await asyncio.gather(*(send(t) for t in tokens[:300]))
    assert set(codes) == {401, 429}
    burst_checks = signature_checks["signatures"]
    assert 10 <= burst_checks <= 10 + 50
    later = [await send(t) for t in tokens[300:]]
    assert later == [429] * 100
    assert signature_checks["signatures"] == burst_checks


async def test_honest_clients_behind_one_address_are_not_locked_out(
    wide_client, base_url, issue_token
):
    # 50 valid tokens in flight at once from one NAT address: none is a failed guess.
    tokens = [issue_token(f"user-{n}") for n in range(50)]

    async def send(token: str) -> int:
        headers = {"Authorization": f"Bearer {token}"}
        answer = await wide_client.fetch(
            base_url + "/test-auth", headers=headers, raise_error=False
        )
        return answer.code

    codes = await asyncio.gather(*(send(t) for t in tokens))
    assert codes == [200] * 50


@pytest.mark.parametrize(
    "settings_overrides",
    [
        {
            **TIGHT,
            "JOTGUARD_RATELIMIT_FAILED_AUTH": "3/minute",
            "JOTGUARD_RATELIMIT_TOKEN": "100/minute",
        }
    ],
)
async def test_wrong_secrets_are_refused_unchecked_once_the_budget_is_spent(fetch, monkeypatch):
    monkeypatch.setattr(TokenEndpoint, "secret_checks", 0)
    answers = []
    for n in range(10):
        attempt = token_request(f"client-{n}", "wrong")
        answers.append(await fetch("/limited/token", **attempt))
    assert [a.code for a in answers] == [401] * 3 + [429] * 7
    assert TokenEndpoint.secret_checks == 3


@pytest.mark.parametrize(
    "settings_overrides",
    [
        {
            **TIGHT,
            "JOTGUARD_RATELIMIT_PREAUTH": "20/minute",
            "JOTGUARD_RATELIMIT_FAILED_AUTH": "1000/minute",
        }
    ],
)
async def test_preauth_guard_caps_token_checks_per_ip(fetch, issue_token, signature_checks):
    tokens = garbage_tokens(issue_token("alice"), 50)
    answers = [await fetch("/test-auth", token=token) for token in tokens]
    assert [a.code for a in answers] == [401] * 20 + [429] * 30
    assert answers[-1].headers["RateLimit-Policy"] == '"preauth-60s";q=20;w=60'
    assert signature_checks["signatures"] == 20


# Three credential checks per IP per minute; the route itself is out of reach.
PREAUTH_OF_THREE = pytest.mark.parametrize(
    "settings_overrides",
    [{**TIGHT, "JOTGUARD_RATELIMIT_PREAUTH": "3/minute", "JOTGUARD_RATELIMIT_ADMIN": "100/minute"}],
)


@PREAUTH_OF_THREE
async def test_preauth_guard_counts_checks_not_requests_of_a_verified_token(
    fetch, issue_token, signature_checks
):
    token = issue_token("alice")
    codes = [(await fetch("/limited/admin", token=token)).code for _ in range(10)]
    assert codes == [200] * 10  # verified once, then remembered: one preauth charge
    assert signature_checks["signatures"] == 1
    others = [(await fetch("/limited/admin", token=issue_token(f"u{n}"))).code for n in range(3)]
    assert others == [200, 200, 429]  # new tokens still need checks, and the guard counts them


@PREAUTH_OF_THREE
async def test_a_verified_token_refused_later_is_charged_to_the_preauth_guard(
    fetch, issue_token, services
):
    token = issue_token("alice")
    assert (await fetch("/limited/admin", token=token)).code == 200
    await services.revocations.revoke_subject("alice", before=time.time() + 1)
    codes = [(await fetch("/limited/admin", token=token)).code for _ in range(4)]
    assert codes == [401, 401, 429, 429]  # a flood of a revoked token is cut off too


@pytest.mark.parametrize(
    "settings_overrides",
    [
        {
            **BEHIND_PROXY,
            "JOTGUARD_RATELIMIT_FAILED_AUTH": "3/minute",
            "JOTGUARD_RATELIMIT_ADMIN": "100/minute",
        }
    ],
)
async def test_failed_auth_budget_is_spent_by_failures_only(fetch, issue_token):
    good = issue_token("alice")
    bad = garbage_tokens(good, 4)
    for _ in range(10):
        assert (await fetch("/limited/admin", token=good)).code == 200  # successes are free
    assert [(await fetch("/limited/admin", token=t)).code for t in bad] == [401, 401, 401, 429]
    # Once spent, no new token from that IP is checked; other IPs are unaffected.
    fresh = issue_token("alice")
    locked = await fetch("/limited/admin", token=fresh)
    assert locked.code == 429
    assert locked.headers["RateLimit-Policy"] == '"failed-auth-60s";q=3;w=60'
    assert (await fetch("/limited/admin", token=fresh, **from_ip("198.51.100.4"))).code == 200
    # A token already verified needs no check, so the lockout (which guards checks) does
    # not hold it back: a guesser cannot lock out the users behind its NAT address.
    assert (await fetch("/limited/admin", token=good)).code == 200
    # Anonymous routes stay open to the locked IP.
    assert (await fetch("/test")).code == 200


@pytest.mark.parametrize(
    "settings_overrides", [{**TIGHT, "JOTGUARD_RATELIMIT_FAILED_AUTH": "3/minute"}]
)
async def test_expired_tokens_do_not_spend_the_failed_auth_budget(fetch, issue_token):
    expired = issue_token("alice", ttl=-120)
    codes = [(await fetch("/test-auth", token=expired)).code for _ in range(5)]
    assert codes == [401] * 5


@pytest.mark.parametrize(
    "settings_overrides",
    [
        {
            **BEHIND_PROXY,
            "JOTGUARD_RATELIMIT_FAILED_AUTH": "3/minute",
            "JOTGUARD_RATELIMIT_TOKEN": "100/minute",
        }
    ],
)
async def test_failed_client_checks_at_the_token_endpoint_lock_the_ip(fetch):
    wrong = [
        (await fetch("/limited/token", **token_request(f"c{n}", "wrong"))).code for n in range(3)
    ]
    assert wrong == [401, 401, 401]
    # Even the right secret waits now: the brute force cannot continue from here.
    assert (await fetch("/limited/token", **token_request("app", "right"))).code == 429
    answer = await fetch("/limited/token", **token_request("app", "right", ip="198.51.100.4"))
    assert answer.code == 200


# --- storage faults --------------------------------------------------------------------


def _dead_redis_settings(fail_closed: bool) -> dict[str, str]:
    return {
        **TIGHT,
        "JOTGUARD_RATELIMIT_STORAGE": f"redis://127.0.0.1:{closed_port()}/15",
        "JOTGUARD_RATELIMIT_FAIL_CLOSED": "true" if fail_closed else "false",
    }


@pytest.mark.parametrize("settings_overrides", [_dead_redis_settings(fail_closed=False)])
async def test_unreachable_redis_fails_open_and_is_counted_and_logged_once(
    fetch, services, caplog, issue_token
):
    caplog.set_level(logging.WARNING, logger="jotguard.ratelimit")
    answers = [await fetch("/test") for _ in range(8)]
    answers.append(await fetch("/limited/admin", token=issue_token("alice")))

    assert {a.code for a in answers} == {200}  # 8 > the 5/minute limit: nothing counted
    assert "RateLimit" not in answers[0].headers
    counts = services.rate_limits.limiter.counts
    assert counts[("default", "failed_open")] == 8
    assert counts[("preauth", "failed_open")] == counts[("admin", "failed_open")] == 1
    assert services.rate_limits.limiter.storage_failures == 11  # + the failed-auth peek
    lines = [r.getMessage() for r in caplog.records if r.name == "jotguard.ratelimit"]
    assert len(lines) == 1
    assert "rate-limit storage unavailable" in lines[0]
    assert "failing open" in lines[0]


@pytest.mark.parametrize("settings_overrides", [_dead_redis_settings(fail_closed=True)])
async def test_unreachable_redis_with_fail_closed_answers_503(fetch, services):
    answer = await fetch("/test")
    assert answer.code == 503
    assert answer.headers["Retry-After"] == "5"
    assert json.loads(answer.body)["error"] == "temporarily_unavailable"
    assert services.rate_limits.limiter.counts[("default", "failed_closed")] == 1
    assert (await fetch("/healthz")).code == 200  # probes do not depend on the storage


# --- the README's library example ------------------------------------------------------


def readme_example() -> str:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("### Rate limits in your own Tornado app", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "the README lost its rate-limit example"
    return match.group(1)


async def test_readme_library_example_works(services, http_client, issue_token):
    from tornado.httpserver import HTTPServer
    from tornado.testing import bind_unused_port

    namespace: dict = {"__name__": "readme_example"}
    exec(compile(readme_example(), "README.md", "exec"), namespace)  # noqa: S102
    app = namespace["make_app"](services.authenticator)
    server = HTTPServer(app)
    sock, port = bind_unused_port()
    server.add_sockets([sock])
    base = f"http://127.0.0.1:{port}"
    token = issue_token("alice")
    try:
        search = [
            await http_client.fetch(
                base + "/search", headers={"Authorization": f"Bearer {token}"}, raise_error=False
            )
            for _ in range(31)
        ]
        status = [await http_client.fetch(base + "/status", raise_error=False) for _ in range(40)]
    finally:
        server.stop()
        await app.wildcard_router.rules[0].target_kwargs["rate_limits"].limiter.aclose()

    assert [a.code for a in search] == [200] * 30 + [429]
    assert search[0].headers["RateLimit-Policy"] == '"search-60s";q=30;w=60'
    assert {a.code for a in status} == {200}
    assert "RateLimit" not in status[0].headers


class TestDeadRedisIsVisibleToOperators:
    @pytest.fixture
    def settings_overrides(self):
        return {"JOTGUARD_RATELIMIT_STORAGE": "redis://127.0.0.1:1/0"}

    async def test_readyz_names_it_metrics_count_it_requests_pass(self, fetch, services):
        assert (await fetch("/test")).code == 200  # fail-open
        ready = await fetch("/readyz")
        assert ready.code == 503
        assert "ratelimit_storage" in json.loads(ready.body)["error_description"]
        metrics = services.metrics.exposition("text/plain")[0].decode()
        assert 'jotguard_ratelimit_decisions_total{decision="failed_open",policy="default"}' in (
            metrics
        )
        assert 'jotguard_ratelimit_storage_failures_total{policy="default"}' in metrics


# --- the header the proxy writes; policies turned off -----------------------------------


@pytest.mark.parametrize(
    "settings_overrides",
    [{**TIGHT, "JOTGUARD_TRUSTED_PROXIES": "127.0.0.1", "JOTGUARD_CLIENT_IP_HEADER": "x-real-ip"}],
)
async def test_with_x_real_ip_a_varying_forwarded_for_opens_no_new_budget(fetch, issue_token):
    # nginx's `proxy_set_header X-Real-IP $remote_addr`, passing the client's own XFF on.
    tokens = garbage_tokens(issue_token("alice"), 25)
    codes = [
        (
            await fetch(
                "/test-auth",
                token=token,
                headers={"X-Real-IP": "203.0.113.50", "X-Forwarded-For": f"10.9.{n}.1"},
            )
        ).code
        for n, token in enumerate(tokens)
    ]
    assert codes == [401] * 10 + [429] * 15
    other = await fetch("/test-auth", token=tokens[0], headers={"X-Real-IP": "203.0.113.51"})
    assert other.code == 401  # another client address, another budget


@pytest.mark.parametrize("settings_overrides", [{**TIGHT, "JOTGUARD_RATELIMIT_DEFAULT": "off"}])
async def test_a_policy_turned_off_counts_nothing_and_sends_no_headers(
    fetch, issue_token, services
):
    token = issue_token("alice")
    answers = [await fetch("/test-auth", token=token) for _ in range(20)]
    answers += [await fetch("/test") for _ in range(20)]
    assert {a.code for a in answers} == {200}
    assert not any("RateLimit" in a.headers or "RateLimit-Policy" in a.headers for a in answers)
    # The brute-force guards are not turned off with it.
    bad = [(await fetch("/test-auth", token=t)).code for t in garbage_tokens(token, 12)]
    assert bad == [401] * 10 + [429] * 2


@pytest.mark.parametrize(
    "settings_overrides",
    [{**TIGHT, "JOTGUARD_RATELIMIT_FAILED_AUTH": "off", "JOTGUARD_RATELIMIT_PREAUTH": "off"}],
)
async def test_the_guards_are_turned_off_by_name(fetch, issue_token):
    bad = [(await fetch("/test-auth", token=t)).code for t in garbage_tokens(issue_token(), 20)]
    assert bad == [401] * 20


@pytest.mark.parametrize(
    "settings_overrides", [{**TIGHT, "JOTGUARD_RATELIMIT_FAILED_AUTH": "3/minute"}]
)
async def test_a_refused_request_charges_nothing_further(fetch, issue_token, services):
    tokens = garbage_tokens(issue_token("alice"), 40)
    codes = [(await fetch("/test-auth", token=t)).code for t in tokens]
    assert codes == [401] * 3 + [429] * 37
    limits = services.rate_limits
    (preauth,) = await limits.limiter.usage(limits.preauth, "ip:127.0.0.1")
    # Only the three checked tokens reached the preauth guard: the refused ones stopped
    # at the failed-auth budget, before it.
    assert preauth.limit - preauth.remaining == 3
