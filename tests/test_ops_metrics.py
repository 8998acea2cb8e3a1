"""/metrics through HTTP: counts by route pattern, status and authentication outcome."""

from __future__ import annotations

import collections
import re
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tornado.httpclient import AsyncHTTPClient

from backends.telemetry import EventCounter, Sample
from tests.helpers import ScopedHandler, app_with, signed
from tests.live import live_jotguard
from webapp.service.metrics import AUTH_OUTCOMES, Metrics
from webapp.service.server import METRICS_HOST, listen, listen_metrics


@pytest.fixture
def app(services):
    return app_with(services, (r"/notes", ScopedHandler))


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """``{sorted label pairs: value}`` of the samples called ``name``."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


async def scrape(fetch) -> str:
    response = await fetch("/metrics")
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return response.body.decode()


async def test_auth_outcomes_count_what_happened(fetch, services, issue_token):
    good = issue_token("alice")
    claims = services.issuer.claims_for("mallory")
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    requests = [
        ("/test-auth", {"token": good}, "success"),
        ("/test-auth", {"token": issue_token("bob", scopes=["read:notes"])}, "success"),
        ("/notes", {"token": issue_token("carol", scopes=["read:notes"])}, "success"),
        ("/test-auth", {}, "missing"),
        ("/test-auth", {"headers": {"Authorization": "Basic YTpi"}}, "missing"),
        ("/test-auth", {"headers": {"Authorization": "Bearer a b"}}, "malformed"),
        ("/test-auth", {"token": "not-a-jwt"}, "malformed"),
        ("/test-auth", {"token": issue_token("dave", ttl=-3600)}, "expired"),
        ("/test-auth", {"token": issue_token("erin", audience="elsewhere")}, "wrong_audience"),
        (
            "/test-auth",
            {"token": signed(services, {**claims, "iss": "https://evil/"})},
            "wrong_issuer",
        ),
        ("/test-auth", {"token": signed(services, claims, kid="retired-long-ago")}, "unknown_key"),
        ("/test-auth", {"token": forged}, "invalid_signature"),
        ("/notes", {"token": issue_token("frank")}, "insufficient_scope"),
        ("/notes", {"token": issue_token("grace", scopes=["write:notes"])}, "insufficient_scope"),
    ]
    expected = collections.Counter(outcome for _, _, outcome in requests)
    statuses = collections.Counter()
    for path, kwargs, _ in requests:
        response = await fetch(path, **kwargs)
        statuses[(path, response.code)] += 1

    text = await scrape(fetch)

    outcomes = {
        dict(k)["outcome"]: v for k, v in samples(text, "jotguard_auth_outcomes_total").items()
    }
    assert set(outcomes) >= set(AUTH_OUTCOMES)  # every known outcome is there from the start
    assert {k: v for k, v in outcomes.items() if v} == dict(expected)
    requests_total = samples(text, "jotguard_http_requests_total")
    for (path, code), count in statuses.items():
        key = (("method", "GET"), ("route", path), ("status", str(code)))
        assert requests_total[key] == count


async def test_routes_are_labelled_by_pattern_so_cardinality_stays_bounded(
    fetch, http_client, base_url
):
    for path in ("/no/such/thing", "/another-1", "/another-2", "/test?x=1"):
        await fetch(path)
    await http_client.fetch(
        base_url + "/test", method="BREW", raise_error=False, allow_nonstandard_methods=True
    )

    text = await scrape(fetch)

    requests_total = samples(text, "jotguard_http_requests_total")
    assert requests_total[(("method", "GET"), ("route", "unmatched"), ("status", "404"))] == 3
    assert requests_total[(("method", "GET"), ("route", "/test"), ("status", "200"))] == 1
    assert requests_total[(("method", "OTHER"), ("route", "/test"), ("status", "405"))] == 1
    routes = {dict(k)["route"] for k in requests_total}
    assert not any("another" in r or "no/such" in r for r in routes)
    latency = samples(text, "jotguard_http_request_duration_seconds_count")
    assert latency[(("route", "unmatched"),)] == 3


async def test_backend_telemetry_is_read_at_scrape_time(fetch, services, caplog):
    class JwksSource:
        def __init__(self) -> None:
            self.fetches = EventCounter("jwks_fetches_total", "JWKS fetches", ("issuer", "result"))
            self.keys = 0

        def telemetry(self):
            yield from self.fetches.samples()
            yield Sample("jwks_keys", "gauge", "Keys held", self.keys, {"issuer": "https://t/"})

    class Broken:
        def telemetry(self):
            raise RuntimeError("bug in a backend")

    source = JwksSource()
    services.metrics.watch(Broken())
    services.metrics.watch(source)
    source.fetches.inc("https://t/", "ok")
    source.fetches.inc("https://t/", "ok")
    source.fetches.inc("https://t/", "failed")
    source.keys = 3

    text = await scrape(fetch)

    assert samples(text, "jotguard_jwks_fetches_total") == {
        (("issuer", "https://t/"), ("result", "ok")): 2.0,
        (("issuer", "https://t/"), ("result", "failed")): 1.0,
    }
    assert samples(text, "jotguard_jwks_keys") == {(("issuer", "https://t/"),): 3.0}
    assert samples(text, "jotguard_signing_keys")[(("state", "current"),)] == 1.0
    assert "telemetry of" in caplog.text  # the broken source is logged, not fatal


def test_event_counter_rejects_bad_names_and_label_counts():
    with pytest.raises(ValueError, match="_total"):
        EventCounter("jwks_fetches", "no suffix")
    counter = EventCounter("x_total", "x", ("a",))
    with pytest.raises(ValueError, match="labels"):
        counter.inc("1", "2")


@pytest.mark.parametrize(
    "settings_overrides", [{"JOTGUARD_RATELIMIT_DEFAULT": "2/minute"}], indirect=False
)
async def test_counters_for_other_features_start_at_zero_and_count(fetch, services):
    services.metrics.token_issued("client_credentials")
    assert [(await fetch("/test")).code for _ in range(3)] == [200, 200, 429]

    text = await scrape(fetch)

    issued = samples(text, "jotguard_tokens_issued_total")
    assert issued == {
        (("grant_type", "client_credentials"),): 1.0,
        (("grant_type", "password"),): 0.0,
        (("grant_type", "refresh_token"),): 0.0,
    }
    decisions = samples(text, "jotguard_ratelimit_decisions_total")
    assert decisions[(("decision", "allowed"), ("policy", "default"))] == 2.0
    assert decisions[(("decision", "limited"), ("policy", "default"))] == 1.0


async def test_openmetrics_when_the_scraper_asks(fetch):
    response = await fetch("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert response.body.decode().rstrip().endswith("# EOF")


def test_each_services_has_its_own_registry():
    first, second = Metrics(), Metrics()
    first.auth_outcome("expired")
    assert (
        second.registry.get_sample_value("jotguard_auth_outcomes_total", {"outcome": "expired"})
        == 0
    )


@pytest.mark.parametrize("settings_overrides", [{"JOTGUARD_METRICS": "off"}])
async def test_metrics_off_serves_no_metrics(fetch):
    assert (await fetch("/metrics")).code == 404


@pytest.mark.parametrize("settings_overrides", [{"JOTGUARD_METRICS": "0"}])
async def test_separate_port_serves_metrics_on_loopback_only(fetch, services, issue_token):
    assert (await fetch("/metrics")).code == 404
    await fetch("/test-auth", token=issue_token())
    server, address = listen_metrics(services, listen(METRICS_HOST, 0))
    client = AsyncHTTPClient(force_instance=True)
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", address)
        response = await client.fetch(address + "metrics")
        other = await client.fetch(address + "test", raise_error=False)
    finally:
        client.close()
        server.stop()
    outcomes = samples(response.body.decode(), "jotguard_auth_outcomes_total")
    assert outcomes[(("outcome", "success"),)] == 1.0
    assert other.code == 404  # nothing but /metrics there


@pytest.mark.slow
def test_serve_opens_the_separate_metrics_port(tmp_path):
    with live_jotguard(tmp_path / "data", {"JOTGUARD_METRICS": "0"}) as server:
        assert server.metrics_url is not None
        assert server.metrics_url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(server.metrics_url, timeout=5) as response:  # noqa: S310
            assert b"jotguard_http_requests_in_flight" in response.read()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(server.url + "metrics", timeout=5)  # noqa: S310
        assert refused.value.code == 404


def test_latency_buckets_count_observations_up_to_their_bound():
    metrics = Metrics()
    for seconds in (0.0004, 0.001, 0.0011, 0.3, 7.0):
        metrics.observe_request("/x", "GET", 200, seconds)
    text = metrics.exposition("text/plain")[0].decode()
    buckets = {
        dict(labels)["le"]: value
        for labels, value in samples(text, "jotguard_http_request_duration_seconds_bucket").items()
    }
    # A value on a bound belongs to that bucket (le = "less than or equal").
    assert (buckets["0.001"], buckets["0.0025"], buckets["0.25"], buckets["0.5"]) == (2, 3, 3, 4)
    assert (buckets["5.0"], buckets["+Inf"]) == (4, 5)
    assert samples(text, "jotguard_http_request_duration_seconds_count") == {(("route", "/x"),): 5}
    assert samples(text, "jotguard_http_request_duration_seconds_sum")[
        (("route", "/x"),)
    ] == pytest.approx(7.3025)
    assert samples(text, "jotguard_http_requests_total") == {
        (("method", "GET"), ("route", "/x"), ("status", "200")): 5
    }
