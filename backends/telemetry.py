"""Numbers a backend exposes for monitoring, without depending on a metrics library.

A backend that holds state worth watching (a revocation mirror's lag, JWKS
fetches per issuer, rate-limit storage failures) implements
:class:`TelemetrySource`. The web side reads every registered source when it is
scraped and turns the samples into Prometheus metrics, so backends never import
``prometheus_client`` and their counters cost a dict update.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

MetricKind = Literal["counter", "gauge"]

_NAME = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True, slots=True)
class Sample:
    """One value of one metric.

    :param name: snake_case, without the ``jotguard_`` prefix the web side adds;
        a counter's name ends in ``_total``.
    :param labels: a few low-cardinality labels (an issuer, a policy), never a
        subject, token id or anything a client chooses freely.
    """

    name: str
    kind: MetricKind
    help: str
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)


class TelemetrySource(Protocol):
    def telemetry(self) -> Iterable[Sample]:
        """The current values. Called at scrape time: cheap, no I/O, and it must not raise."""
        ...


class EventCounter:
    """Counts events by label values, for a backend's :meth:`TelemetrySource.telemetry`.

    ``fetches = EventCounter("jwks_fetches_total", "JWKS fetches", ("issuer", "result"))``,
    then ``fetches.inc(issuer, "ok")`` and ``yield from fetches.samples()``.
    """

    def __init__(self, name: str, help: str, labelnames: tuple[str, ...] = ()) -> None:
        if not _NAME.fullmatch(name) or not name.endswith("_total"):
            raise ValueError(f"counter name {name!r} must be snake_case and end in _total")
        self.name = name
        self.help = help
        self.labelnames = labelnames
        self._counts: dict[tuple[str, ...], float] = {}

    def inc(self, *labelvalues: str, amount: float = 1.0) -> None:
        if len(labelvalues) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}")
        self._counts[labelvalues] = self._counts.get(labelvalues, 0.0) + amount

    def value(self, *labelvalues: str) -> float:
        return self._counts.get(labelvalues, 0.0)

    def samples(self) -> Iterator[Sample]:
        for values, count in list(self._counts.items()):
            yield Sample(
                self.name,
                "counter",
                self.help,
                count,
                dict(zip(self.labelnames, values, strict=True)),
            )
