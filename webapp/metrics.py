"""Prometheus metrics, on a registry per :class:`~webapp.services.Services`.

Web-side events (requests, authentication outcomes, tokens issued, rate-limit
decisions) are counted here directly. State held by backends (a revocation
mirror's size and lag, JWKS fetches per issuer) is read at scrape time from
every :class:`~backends.telemetry.TelemetrySource` passed to :meth:`Metrics.watch`,
so backends never import prometheus_client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
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


class Metrics:
    """Every jotguard metric, on a registry of its own so tests and apps stay isolated."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter(
            PREFIX + "http_requests_total",
            "HTTP requests by route pattern, method and status.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            PREFIX + "http_request_duration_seconds",
            "Time from request received to response finished, by route pattern.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            PREFIX + "http_requests_in_flight",
            "Requests being handled now.",
            registry=registry,
        )
        self.auth_outcomes = Counter(
            PREFIX + "auth_outcomes_total",
            "Authentication decisions on protected routes: success or the refusal reason.",
            ["outcome"],
            registry=registry,
        )
        for outcome in AUTH_OUTCOMES:
            self.auth_outcomes.labels(outcome)
        self.tokens_issued = Counter(
            PREFIX + "tokens_issued_total",
            "Access tokens issued, by OAuth grant type.",
            ["grant_type"],
            registry=registry,
        )
        for grant_type in GRANT_TYPES:
            self.tokens_issued.labels(grant_type)
        self._sources: list[TelemetrySource] = []
        registry.register(_TelemetryCollector(self._sources))
        # Memory, CPU, open files and GC of this process, as the default registry would have.
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            registry.register(collector)

    def watch(self, source: TelemetrySource) -> None:
        """Read ``source``'s samples at every scrape (a store, a key source, a limiter)."""
        self._sources.append(source)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def auth_outcome(self, outcome: str) -> None:
        self.auth_outcomes.labels(outcome).inc()

    def token_issued(self, grant_type: str) -> None:
        self.tokens_issued.labels(grant_type).inc()

    def exposition(self, accept: str) -> tuple[bytes, str]:
        """The scrape body and its content type; OpenMetrics when the scraper asks for it."""
        encode, content_type = choose_encoder(accept)
        return encode(self.registry), content_type


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
