"""The ingress's Prometheus metrics, served at ``/metrics`` of the ingress.

Each app has a registry of its own (two apps in one process, as in tests, do not
mix their figures). Labels are bounded: the loaded flows (anything else counts as
``(unknown)``), HTTP status codes, the route template. Never a request id.

=================================================  =========  =======================
metric                                             type       labels
=================================================  =========  =======================
``orchestrator_ingress_requests_total``            counter    ``route``, ``flow``, ``status``
``orchestrator_ingress_request_duration_seconds``  histogram  ``route``, ``flow``
``orchestrator_ingress_waiting``                   gauge      (none)
=================================================  =========  =======================

``orchestrator_ingress_waiting`` counts callers waiting for a result right now.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.process_collector import ProcessCollector

UNKNOWN_FLOW = "(unknown)"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class IngressMetrics:
    """The counters of one ingress app."""

    def __init__(self, flows: Iterable[str]) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self._flows = frozenset(flows)
        self.requests = Counter(
            "orchestrator_ingress_requests_total",
            "HTTP requests answered, by route, flow and HTTP status.",
            ["route", "flow", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "orchestrator_ingress_request_duration_seconds",
            "Time from a request's arrival to its answer, by route and flow.",
            ["route", "flow"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.waiting = Gauge(
            "orchestrator_ingress_waiting",
            "Callers waiting for a result now.",
            registry=self.registry,
        )

    def flow_label(self, flow: str | None) -> str:
        """``flow`` if it is loaded, else one fixed label (names in URLs are unbounded)."""
        return flow if flow is not None and flow in self._flows else UNKNOWN_FLOW

    def observe(self, *, route: str, flow: str | None, status: int, seconds: float) -> None:
        """Count one answered request."""
        label = self.flow_label(flow)
        self.requests.labels(route, label, str(status)).inc()
        self.duration.labels(route, label).observe(seconds)

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)
