"""Prometheus metrics, on a registry per :class:`~webapp.service.services.Services`.

Web-side events (requests, authentication outcomes, tokens issued, rate-limit
decisions) are counted here directly. State held by backends (a revocation
mirror's size and lag, JWKS fetches per issuer) is read at scrape time from
every :class:`~backends.telemetry.TelemetrySource` passed to :meth:`Metrics.watch`,
so backends never import prometheus_client.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections import Counter as CounterOf
from collections.abc import Callable, Iterator
from itertools import accumulate
from typing import Any

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Gauge,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from backends.telemetry import Sample, TelemetrySource

log = logging.getLogger("jotguard")

PREFIX = "jotguard_"

# Pre-created so a dashboard or alert sees 0 before the first occurrence.
AUTH_OUTCOMES = (
    "success",
    "missing",
    "malformed",
    "invalid_signature",
    "invalid_claims",
    "expired",
    "wrong_audience",
    "wrong_issuer",
    "unknown_key",
    "revoked",
    "insufficient_scope",
    "store_unavailable",
)
GRANT_TYPES = ("client_credentials", "password", "refresh_token")

# An API answers in milliseconds; the tail buckets catch a slow store or JWKS fetch.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_BUCKET_BOUNDS = (*(str(float(bound)) for bound in LATENCY_BUCKETS), "+Inf")


class Metrics:
    """Every jotguard metric, on a registry of its own so tests and apps stay isolated.

    Per-request updates are plain counter increments (:class:`RequestCounters`), turned
    into metric families only when scraped: a prometheus_client child per observation
    (``labels()``, its lock, a histogram's bucket walk) cost a protected request a
    tenth of its time.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.counters = RequestCounters()
        self.in_flight = Gauge(
            PREFIX + "http_requests_in_flight",
            "Requests being handled now.",
            registry=registry,
        )
        registry.register(self.counters)
        self._sources: list[TelemetrySource] = []
        registry.register(_TelemetryCollector(self._sources))
        # Memory, CPU, open files and GC of this process, as the default registry would have.
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            registry.register(collector)

    def watch(self, source: TelemetrySource) -> None:
        """Read ``source``'s samples at every scrape (a store, a key source, a limiter)."""
        self._sources.append(source)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.counters.observe_request(route, method, status, seconds)

    def auth_outcome(self, outcome: str) -> None:
        self.counters.auth_outcomes[outcome] += 1

    def token_issued(self, grant_type: str) -> None:
        self.counters.tokens_issued[grant_type] += 1

    def exposition(self, accept: str) -> tuple[bytes, str]:
        """The scrape body and its content type; OpenMetrics when the scraper asks for it."""
        encode, content_type = choose_encoder(accept)
        return encode(self.registry), content_type


class RequestCounters(Collector):
    """Requests, their latency, authentication outcomes and issued tokens, counted on the
    IOLoop (one thread: no locks) and reported as Prometheus families at scrape time."""

    def __init__(self) -> None:
        self.requests: CounterOf[tuple[str, str, int]] = CounterOf()
        # Per route: one count per bucket of LATENCY_BUCKETS and a last one for +Inf.
        self.latency_buckets: dict[str, list[int]] = {}
        self.latency_sum: dict[str, float] = {}
        self.auth_outcomes: CounterOf[str] = CounterOf(dict.fromkeys(AUTH_OUTCOMES, 0))
        self.tokens_issued: CounterOf[str] = CounterOf(dict.fromkeys(GRANT_TYPES, 0))

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests[(route, method, status)] += 1
        buckets = self.latency_buckets.get(route)
        if buckets is None:
            buckets = self.latency_buckets[route] = [0] * (len(LATENCY_BUCKETS) + 1)
        # A bucket counts observations <= its bound: the first bound not below ``seconds``.
        buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum[route] = self.latency_sum.get(route, 0.0) + seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            PREFIX + "http_requests",
            "HTTP requests by route pattern, method and status.",
            labels=["route", "method", "status"],
        )
        for (route, method, status), count in list(self.requests.items()):
            requests.add_metric([route, method, str(status)], count)
        yield requests
        latency = HistogramMetricFamily(
            PREFIX + "http_request_duration_seconds",
            "Time from request received to response finished, by route pattern.",
            labels=["route"],
        )
        for route, counts in list(self.latency_buckets.items()):
            cumulative = list(accumulate(counts))
            latency.add_metric(
                [route], list(zip(_BUCKET_BOUNDS, cumulative, strict=True)), self.latency_sum[route]
            )
        yield latency
        yield _counter_family(
            "auth_outcomes",
            "Authentication decisions on protected routes: success or the refusal reason.",
            "outcome",
            self.auth_outcomes,
        )
        yield _counter_family(
            "tokens_issued",
            "Access tokens issued, by OAuth grant type.",
            "grant_type",
            self.tokens_issued,
        )


def _counter_family(name: str, help_text: str, label: str, counts: CounterOf[str]) -> Metric:
    family = CounterMetricFamily(PREFIX + name, help_text, labels=[label])
    for value, count in list(counts.items()):
        family.add_metric([value], count)
    return family


class _TelemetryCollector(Collector):
    def __init__(self, sources: list[TelemetrySource]) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        families: dict[str, list[Sample]] = {}
        for source in list(self.sources):
            try:
                samples = list(source.telemetry())
            except Exception:
                # A broken source must not cost the operator every other metric.
                log.exception("telemetry of %r failed; its metrics are left out", source)
                continue
            for sample in samples:
                families.setdefault(sample.name, []).append(sample)
        for name, samples in families.items():
            yield _family(PREFIX + name, samples)


def _family(name: str, samples: list[Sample]) -> Metric:
    first = samples[0]
    labelnames = sorted({label for sample in samples for label in sample.labels})
    make: Callable[..., Any] = CounterMetricFamily if first.kind == "counter" else GaugeMetricFamily
    family = make(name, first.help, labels=labelnames)
    for sample in samples:
        family.add_metric([sample.labels.get(label, "") for label in labelnames], sample.value)
    assert isinstance(family, Metric)
    return family
