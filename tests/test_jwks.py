"""The remote JWKS key source against a fake issuer on 127.0.0.1, time moved by a fake clock."""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import AsyncIterator
from typing import Any

import pytest
from joserfc.jwk import ECKey, OctKey, RSAKey
from tornado.httpclient import AsyncHTTPClient

from backends.errors import BackendUnavailable, ConfigError, InvalidToken
from backends.keys.jwks import JWKSKeySource, JWKSPolicy
from backends.keys.jwks.fetch import discovery_urls
from backends.keys.jwks.keyset import parse_key
from backends.outbound import same_origin
from tests.clock import FakeClock
from tests.fake_issuer import FakeIssuer
from webapp.web.errors import error_answer

RS256 = frozenset({"RS256"})


@pytest.fixture
async def outbound() -> AsyncIterator[AsyncHTTPClient]:
    client = AsyncHTTPClient(force_instance=True)
    yield client
    client.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_source(fake_issuer: FakeIssuer, outbound: AsyncHTTPClient, clock: FakeClock) -> Any:
    def make(**kwargs: Any) -> JWKSKeySource:
        policy = {"max_age": 600, "max_stale": 86400, "timeout": 0.5, "requests_per_minute": 5}
        policy.update({k: kwargs.pop(k) for k in list(kwargs) if k in policy})
        kwargs.setdefault("jwks_uri", fake_issuer.jwks_uri)
        return JWKSKeySource(
            issuer=fake_issuer.issuer,
            policy=JWKSPolicy(**policy),
            http_client=outbound,
            clock=clock,
            **kwargs,
        )

    return make


async def wait_until(condition: Any, what: str) -> None:
    """Yield to the loop until ``condition()``; bounded, so a broken test fails, not hangs."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


def kid(fake: FakeIssuer) -> str:
    return fake.kid_of(fake.current)


# -- caching and refresh -------------------------------------------------------------------


async def test_first_use_fetches_once_then_serves_from_cache(make_source, fake_issuer):
    source = make_source()
    for _ in range(3):
        key = await source.get_key(kid(fake_issuer), "RS256")
        assert key.kid == kid(fake_issuer)
        assert key.alg == "RS256"
    assert fake_issuer.jwks_fetches == 1


async def test_refresh_ahead_happens_in_background_and_valid_tokens_never_wait(
    make_source, fake_issuer, clock
):
    source = make_source(max_age=600)
    await source.get_key(kid(fake_issuer), "RS256")
    fake_issuer.jwks_mode = "gate"  # the next fetch hangs until the test opens the gate
    clock.advance(0.8 * 600 + 1)
    for _ in range(20):
        # Would hang on the gated fetch if a known key ever waited for a refresh.
        await asyncio.wait_for(source.get_key(kid(fake_issuer), "RS256"), timeout=5)
    await wait_until(lambda: fake_issuer.jwks_fetches == 2, "the background refresh started")
    new_kid = fake_issuer.rotate()
    fake_issuer.gate.set()
    await source.refresh_if_due()  # joins the refresh in flight
    assert fake_issuer.jwks_fetches == 2
    assert new_kid in source.status().key_ids
    assert source.status().fresh


async def test_unknown_kid_refreshes_once_and_finds_a_rotated_key(make_source, fake_issuer):
    source = make_source()
    await source.get_key(kid(fake_issuer), "RS256")
    new_kid = fake_issuer.rotate()
    assert (await source.get_key(new_kid, "RS256")).kid == new_kid
    assert fake_issuer.jwks_fetches == 2
    assert source.status().unknown_kid_refreshes == 1


async def test_kid_unknown_after_a_successful_refresh_is_invalid_token(make_source, fake_issuer):
    source = make_source()
    await source.get_key(kid(fake_issuer), "RS256")
    for _ in range(3):
        with pytest.raises(InvalidToken) as caught:
            await source.get_key("no-such-kid", "RS256")
        assert caught.value.reason == "unknown_key"
    # The same absent kid does not refetch until the set changes.
    assert fake_issuer.jwks_fetches == 2


async def test_unknown_kid_flood_is_limited_to_the_budget_per_minute(
    make_source, fake_issuer, clock
):
    source = make_source(requests_per_minute=5)
    await source.get_key(kid(fake_issuer), "RS256")
    for i in range(100):
        # The first five are looked for (401: not published); then the budget is spent
        # and a kid cannot be told from a new key's (503 until a refresh can run).
        expected = InvalidToken if i < 5 else BackendUnavailable
        with pytest.raises(expected):
            await source.get_key(f"random-{i}", "RS256")
        clock.advance(0.5)  # 100 requests inside one minute
    assert fake_issuer.jwks_fetches == 1 + 5
    assert source.status().unknown_kid_throttled == 95
    clock.advance(61)
    with pytest.raises(InvalidToken):
        await source.get_key("after-a-minute", "RS256")
    assert fake_issuer.jwks_fetches == 1 + 5 + 1
    # That refresh settled every kid seen while throttled: absent, so 401, no fetch.
    for i in range(5, 100):
        with pytest.raises(InvalidToken):
            await source.get_key(f"random-{i}", "RS256")
    assert fake_issuer.jwks_fetches == 1 + 5 + 1


async def test_budget_spent_still_serves_known_keys(make_source, fake_issuer):
    source = make_source(requests_per_minute=1)
    await source.get_key(kid(fake_issuer), "RS256")
    with pytest.raises(InvalidToken):
        await source.get_key("random-0", "RS256")
    for i in range(1, 3):
        with pytest.raises(BackendUnavailable):
            await source.get_key(f"random-{i}", "RS256")
    assert (await source.get_key(kid(fake_issuer), "RS256")).kid == kid(fake_issuer)


async def test_a_new_key_while_the_budget_is_spent_is_503_until_a_refresh_can_run(
    make_source, fake_issuer, clock
):
    source = make_source(requests_per_minute=5)
    await source.get_key(kid(fake_issuer), "RS256")
    for i in range(20):
        with pytest.raises((InvalidToken, BackendUnavailable)):
            await source.get_key(f"random-{i}", "RS256")
        clock.advance(1)
    new_kid = fake_issuer.rotate()
    with pytest.raises(BackendUnavailable) as caught:
        await source.get_key(new_kid, "RS256")
    assert error_answer(caught.value).status == 503
    # The oldest budgeted refresh (20 s ago) leaves the one-minute window in 40 s.
    assert caught.value.retry_after == 40
    clock.advance(caught.value.retry_after)
    assert (await source.get_key(new_kid, "RS256")).kid == new_kid


async def test_a_kid_still_unknown_after_the_scheduled_refresh_is_401(
    make_source, fake_issuer, clock
):
    source = make_source(requests_per_minute=0, max_age=600)
    await source.get_key(kid(fake_issuer), "RS256")
    with pytest.raises(BackendUnavailable) as caught:
        await source.get_key("random", "RS256")
    assert caught.value.retry_after == 480  # the refresh-ahead at 80 % of max age
    clock.advance(480)
    await source.refresh_if_due()
    with pytest.raises(InvalidToken):
        await source.get_key("random", "RS256")


async def test_zero_budget_never_refetches_for_unknown_kids(make_source, fake_issuer):
    source = make_source(requests_per_minute=0)
    await source.get_key(kid(fake_issuer), "RS256")
    with pytest.raises(BackendUnavailable):
        await source.get_key(fake_issuer.rotate(), "RS256")
    assert fake_issuer.jwks_fetches == 1


async def test_concurrent_misses_on_a_new_kid_share_one_fetch(make_source, fake_issuer):
    source = make_source()
    await source.get_key(kid(fake_issuer), "RS256")
    new_kid = fake_issuer.rotate()
    fake_issuer.jwks_mode = "gate"
    waiting = [asyncio.create_task(source.get_key(new_kid, "RS256")) for _ in range(20)]
    others = [asyncio.create_task(source.get_key(f"other-{i}", "RS256")) for i in range(5)]
    await wait_until(lambda: fake_issuer.jwks_fetches == 2, "the refresh reached the issuer")
    fake_issuer.gate.set()
    keys = await asyncio.gather(*waiting)
    assert {k.kid for k in keys} == {new_kid}
    for result in await asyncio.gather(*others, return_exceptions=True):
        assert isinstance(result, InvalidToken)
    assert fake_issuer.jwks_fetches == 2
    assert source.status().unknown_kid_refreshes == 1


async def test_concurrent_first_requests_share_one_fetch(make_source, fake_issuer):
    source = make_source()
    keys = await asyncio.gather(*(source.get_key(kid(fake_issuer), "RS256") for _ in range(20)))
    assert len(keys) == 20
    assert fake_issuer.jwks_fetches == 1


async def test_a_cancelled_caller_does_not_cancel_the_shared_fetch(make_source, fake_issuer):
    source = make_source()
    fake_issuer.jwks_mode = "gate"
    first = asyncio.create_task(source.get_key(kid(fake_issuer), "RS256"))
    second = asyncio.create_task(source.get_key(kid(fake_issuer), "RS256"))
    await wait_until(lambda: fake_issuer.jwks_fetches == 1, "the fetch started")
    first.cancel()
    fake_issuer.gate.set()
    assert (await second).kid == kid(fake_issuer)
    assert fake_issuer.jwks_fetches == 1


# -- outages -------------------------------------------------------------------------------

FAILURES = {
    "down": "unreachable",
    "hang": "timed out",
    "status500": "HTTP 500",
    "html": "not JSON (text/html)",
    "garbage": "not JSON",
    "nokeys": "no 'keys' array",
    "huge": "larger than 1024 KiB",
}


async def break_issuer(fake: FakeIssuer, mode: str) -> None:
    if mode == "down":
        await fake.stop()
    else:
        fake.jwks_mode = mode


@pytest.mark.parametrize("mode", sorted(FAILURES))
async def test_no_key_set_at_all_is_503_with_retry_after(make_source, fake_issuer, mode):
    source = make_source(timeout=0.3)
    await break_issuer(fake_issuer, mode)
    with pytest.raises(BackendUnavailable) as caught:
        await source.get_key(kid(fake_issuer), "RS256")
    assert caught.value.retry_after >= 1
    assert error_answer(caught.value).status == 503
    status = source.status()
    assert not status.has_keys
    assert status.failures == 1
    assert FAILURES[mode] in (status.last_error or "")


@pytest.mark.parametrize("mode", sorted(FAILURES))
async def test_cached_keys_keep_serving_when_the_endpoint_fails(
    make_source, fake_issuer, clock, mode
):
    source = make_source(timeout=0.3, max_age=600)
    await source.get_key(kid(fake_issuer), "RS256")
    await break_issuer(fake_issuer, mode)
    clock.advance(601)  # stale: the key source must try to refresh
    assert (await source.get_key(kid(fake_issuer), "RS256")).kid == kid(fake_issuer)
    await source.refresh_if_due()  # let the background attempt finish
    status = source.status()
    assert status.has_keys
    assert not status.fresh
    assert status.failures == 1
    assert FAILURES[mode] in (status.last_error or "")
    assert (await source.get_key(kid(fake_issuer), "RS256")).kid == kid(fake_issuer)


async def test_stale_keys_serve_until_max_stale_then_503(make_source, fake_issuer, clock):
    source = make_source(max_age=600, max_stale=86400)
    await source.get_key(kid(fake_issuer), "RS256")
    await fake_issuer.stop()
    clock.advance(600 + 86400 - 1)
    assert (await source.get_key(kid(fake_issuer), "RS256")).kid == kid(fake_issuer)
    clock.advance(2)
    with pytest.raises(BackendUnavailable):
        await source.get_key(kid(fake_issuer), "RS256")


async def test_an_unreachable_endpoint_is_not_hammered(make_source, fake_issuer, clock):
    source = make_source()
    await fake_issuer.stop()
    for _ in range(50):
        with pytest.raises(BackendUnavailable):
            await source.get_key(kid(fake_issuer), "RS256")
    assert source.status().fetches == 1  # later requests answer 503 during the back-off
    clock.advance(source.seconds_until_due())
    with pytest.raises(BackendUnavailable):
        await source.get_key(kid(fake_issuer), "RS256")
    assert source.status().fetches == 2


async def test_unknown_kid_while_the_endpoint_fails_is_503(make_source, fake_issuer, clock):
    source = make_source()
    await source.get_key(kid(fake_issuer), "RS256")
    await fake_issuer.stop()
    with pytest.raises(BackendUnavailable):
        await source.get_key("maybe-new", "RS256")  # cannot tell a new key from a bad one


async def test_recovers_when_the_endpoint_comes_back(make_source, fake_issuer, clock):
    source = make_source()
    fake_issuer.jwks_mode = "status500"
    with pytest.raises(BackendUnavailable):
        await source.get_key(kid(fake_issuer), "RS256")
    fake_issuer.jwks_mode = "ok"
    clock.advance(source.seconds_until_due())
    assert (await source.get_key(kid(fake_issuer), "RS256")).kid == kid(fake_issuer)
    assert source.status().has_keys


async def test_failures_are_logged_once_per_interval(make_source, fake_issuer, clock, caplog):
    caplog.set_level(logging.WARNING, logger="jotguard.jwks")
    source = make_source(max_age=600)
    await source.get_key(kid(fake_issuer), "RS256")
    fake_issuer.jwks_mode = "status500"
    clock.advance(600)
    for _ in range(5):  # five failed refreshes inside one minute (back-off 2, 4, 8, 16 s)
        clock.advance(max(source.seconds_until_due(), 0))
        await source.refresh_if_due()
        await source.get_key(kid(fake_issuer), "RS256")
    assert source.status().failures == 5
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "HTTP 500" in warnings[0].getMessage()
    clock.advance(61)
    await source.refresh_if_due()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "5 failure(s) since the last report" in warnings[1].getMessage()


# -- which keys are kept -------------------------------------------------------------------


def rsa_jwk(key: RSAKey, **extra: Any) -> dict[str, Any]:
    jwk = key.as_dict(private=False)
    jwk.update({"kid": "k1", **extra})
    return jwk


@pytest.fixture(scope="module")
def small_rsa() -> RSAKey:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # joserfc warns about the weak key we want
        return RSAKey.generate_key(1024, private=True)


def test_a_plain_rsa_signature_key_is_kept(rsa_key_pool):
    key = parse_key(rsa_jwk(rsa_key_pool[0], alg="RS256", use="sig"), RS256)
    assert set(key.by_alg) == {"RS256"}


def test_a_key_without_alg_serves_every_accepted_algorithm_of_its_type(rsa_key_pool):
    key = parse_key(rsa_jwk(rsa_key_pool[0]), frozenset({"RS256", "PS256", "ES256"}))
    assert set(key.by_alg) == {"RS256", "PS256"}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"use": "enc"}, "not a signature key"),
        ({"key_ops": ["encrypt"]}, "not for verification"),
        ({"kid": None}, "has no kid"),
        ({"kid": ""}, "has no kid"),
        ({"alg": "RS512"}, "not accepted"),
        ({"alg": ["RS256"]}, "not accepted"),
        ({"kty": "oct"}, "unsupported type"),
        ({"kty": ["RSA"]}, "unsupported type"),
        ({"n": "!!!"}, "modulus"),
        ({"e": "AAAA"}, "could not be imported"),
    ],
)
def test_unusable_keys_are_refused(rsa_key_pool, change, reason):
    jwk = rsa_jwk(rsa_key_pool[0], alg="RS256")
    jwk.update(change)
    jwk = {k: v for k, v in jwk.items() if v is not None}
    with pytest.raises(ValueError, match=reason):
        parse_key(jwk, RS256)


def test_rsa_keys_under_2048_bits_are_refused(small_rsa):
    with pytest.raises(ValueError, match="under 2048 bits"):
        parse_key(rsa_jwk(small_rsa, alg="RS256"), RS256)


def test_private_key_material_is_never_used(rsa_key_pool):
    jwk = rsa_key_pool[0].as_dict(private=True)
    jwk.update(kid="k1", alg="RS256")
    with pytest.raises(ValueError, match="private key material"):
        parse_key(jwk, RS256)


def test_symmetric_keys_are_refused():
    jwk = OctKey.generate_key(256, private=True).as_dict(private=True)
    jwk.update(kid="k1", alg="HS256")
    with pytest.raises(ValueError, match="unsupported type"):
        parse_key(jwk, frozenset({"HS256", "RS256"}))


def test_ec_curve_must_fit_the_algorithm():
    jwk = ECKey.generate_key("P-384", private=True).as_dict(private=False)
    jwk.update(kid="k1")
    with pytest.raises(ValueError, match="fits none"):
        parse_key(jwk, frozenset({"ES256"}))
    assert set(parse_key(jwk, frozenset({"ES256", "ES384"})).by_alg) == {"ES384"}


async def test_only_usable_keys_are_published_to_verifiers(
    make_source, fake_issuer, small_rsa, rsa_key_pool
):
    fake_issuer.extra_jwks = [
        {**rsa_jwk(small_rsa, alg="RS256"), "kid": "weak"},
        {**rsa_jwk(rsa_key_pool[3], alg="RS256", use="enc"), "kid": "enc"},
        {"kty": "oct", "k": "c2VjcmV0", "kid": "oct"},
        "not-an-object",
    ]
    source = make_source()
    await source.get_key(kid(fake_issuer), "RS256")
    assert source.status().key_ids == (kid(fake_issuer),)
    with pytest.raises(InvalidToken):
        await source.get_key("weak", "RS256")


async def test_a_key_whose_declared_alg_differs_from_the_tokens_is_refused(
    make_source, fake_issuer
):
    source = make_source(algorithms=("RS256", "PS256"))
    with pytest.raises(InvalidToken, match="does not match"):
        await source.get_key(kid(fake_issuer), "PS256")


async def test_without_kid_the_only_key_for_the_algorithm_is_used(make_source, fake_issuer, clock):
    ec = ECKey.generate_key("P-256", private=True)
    fake_issuer.extra_jwks = [{**ec.as_dict(private=False), "kid": "ec", "alg": "ES256"}]
    source = make_source(algorithms=("RS256", "ES256"))
    # Two keys, one per algorithm: each algorithm has exactly one.
    assert (await source.get_key(None, "RS256")).kid == kid(fake_issuer)
    assert (await source.get_key(None, "ES256")).kid == "ec"
    fetched = fake_issuer.jwks_fetches
    fake_issuer.rotate()
    clock.advance(source.seconds_until_due())
    await source.refresh_if_due()  # the scheduled refresh learns of the rotation
    with pytest.raises(InvalidToken, match="2 keys for RS256"):
        await source.get_key(None, "RS256")
    assert (await source.get_key(None, "ES256")).kid == "ec"
    assert fake_issuer.jwks_fetches == fetched + 1  # a kid-less token never refreshes


async def test_without_kid_and_no_key_for_the_algorithm_is_401(make_source, fake_issuer):
    source = make_source(algorithms=("RS256", "ES256"))
    with pytest.raises(InvalidToken, match="no key for ES256"):
        await source.get_key(None, "ES256")


async def test_a_set_with_no_usable_key_counts_as_a_failure(make_source, fake_issuer, small_rsa):
    fake_issuer.published = []
    fake_issuer.extra_jwks = [rsa_jwk(small_rsa, alg="RS256")]
    source = make_source()
    with pytest.raises(BackendUnavailable):
        await source.get_key("k1", "RS256")
    assert "no usable signature key" in (source.status().last_error or "")


# -- discovery -----------------------------------------------------------------------------


async def test_discovers_the_jwks_uri_from_openid_configuration(make_source, fake_issuer):
    source = make_source(jwks_uri=None)
    await source.get_key(kid(fake_issuer), "RS256")
    assert fake_issuer.discovery_fetches == {"openid-configuration": 1}
    assert source.status().jwks_uri == fake_issuer.jwks_uri
    fake_issuer.rotate()
    await source.get_key(kid(fake_issuer), "RS256")
    assert fake_issuer.discovery_fetches == {"openid-configuration": 1}  # discovered once


async def test_falls_back_to_oauth_authorization_server(make_source, fake_issuer):
    fake_issuer.discovery = "rfc8414"
    source = make_source(jwks_uri=None)
    await source.get_key(kid(fake_issuer), "RS256")
    assert fake_issuer.discovery_fetches == {
        "openid-configuration": 1,
        "oauth-authorization-server": 1,
    }


async def test_discovery_for_another_issuer_is_refused(make_source, fake_issuer):
    fake_issuer.discovery_issuer = "https://evil.example/"
    source = make_source(jwks_uri=None)
    with pytest.raises(BackendUnavailable):
        await source.get_key(kid(fake_issuer), "RS256")
    assert "names issuer 'https://evil.example/'" in (source.status().last_error or "")
    assert fake_issuer.jwks_fetches == 0


@pytest.fixture
async def elsewhere(rsa_key_pool) -> AsyncIterator[FakeIssuer]:
    """Another issuer on another origin (127.0.0.1, another port)."""
    other = FakeIssuer(rsa_key_pool[2:])
    other.start()
    yield other
    await other.stop()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_discovered_jwks_uri_on_another_origin_is_never_fetched(
    make_source, fake_issuer, elsewhere, host
):
    port = elsewhere.port if host == "127.0.0.1" else fake_issuer.port
    fake_issuer.discovery_jwks_uri = f"http://{host}:{port}/.well-known/jwks.json"
    source = make_source(jwks_uri=None)
    with pytest.raises(BackendUnavailable):
        await source.get_key(kid(fake_issuer), "RS256")
    assert "not on the issuer's origin" in (source.status().last_error or "")
    assert (elsewhere.jwks_fetches, fake_issuer.jwks_fetches) == (0, 0)


async def test_a_configured_jwks_uri_may_be_on_another_origin(make_source, elsewhere):
    source = make_source(jwks_uri=elsewhere.jwks_uri)
    assert (await source.get_key(kid(elsewhere), "RS256")).kid == kid(elsewhere)


def test_origins_compare_scheme_host_and_port():
    assert same_origin("https://IdP.example/a", "https://idp.example:443/b")
    assert same_origin("http://127.0.0.1:80/x", "http://127.0.0.1/")
    assert not same_origin("https://idp.example/", "http://idp.example/")
    assert not same_origin("https://idp.example/", "https://keys.idp.example/")
    assert not same_origin("https://idp.example/", "https://idp.example:8443/")
    assert not same_origin("https://idp.example:bad/", "https://idp.example/")


def test_discovery_urls_follow_oidc_then_rfc8414():
    assert discovery_urls("https://tenant.example/") == [
        "https://tenant.example/.well-known/openid-configuration",
        "https://tenant.example/.well-known/oauth-authorization-server",
    ]
    assert discovery_urls("https://idp.example/realms/a") == [
        "https://idp.example/realms/a/.well-known/openid-configuration",
        "https://idp.example/.well-known/oauth-authorization-server/realms/a",
        "https://idp.example/realms/a/.well-known/oauth-authorization-server",
    ]


# -- configuration and lifecycle -----------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"issuer": "http://idp.example/"},
        {"issuer": "https://idp.example/", "jwks_uri": "http://idp.example/jwks"},
        {"issuer": "ftp://idp.example/"},
        {"issuer": "https://idp.example/", "algorithms": ("HS256",)},
        {"issuer": "https://idp.example/", "algorithms": ()},
    ],
)
def test_refused_configurations(kwargs):
    with pytest.raises(ConfigError):
        JWKSKeySource(**kwargs)


async def test_start_prefetches_and_aclose_stops(make_source, fake_issuer):
    source = make_source()
    source.start()
    await wait_until(lambda: source.status().has_keys, "the background fetch")
    assert fake_issuer.jwks_fetches == 1
    await source.aclose()
    status = source.status()
    assert status.last_success_at is not None
    assert status.fetches == 1
    assert status.failures == 0
