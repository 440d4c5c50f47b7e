"""The coordinator's Prometheus metrics, and the ``/metrics`` endpoint that serves them.

Every coordinator counts (it costs about a microsecond per counter on the hot
path); the endpoint runs only when ``metrics_port`` is set. Each coordinator has a
registry of its own, so two in one process (tests) do not mix their figures.

Labels are bounded sets: flows, steps, services and operations of the loaded
catalog, result statuses, stable error codes (a code not in
``contracts.error_codes`` nor ``http.NNN`` is counted as ``other``), partitions
this instance owns. Never a request id. No hook ever raises.
Label children are looked up once and cached, because ``.labels()`` costs more
than the increment itself.

=========================================  =========  ===================================
metric                                     type       labels
=========================================  =========  ===================================
``orchestrator_sagas_started_total``       counter    ``flow``
``orchestrator_sagas_finished_total``      counter    ``flow``, ``status``, ``complete``
``orchestrator_saga_duration_seconds``     histogram  ``flow``, ``status``
``orchestrator_sagas_in_flight``           gauge
``orchestrator_sagas_restored_total``      counter
``orchestrator_call_duration_seconds``     histogram  ``service``, ``operation``
``orchestrator_call_errors_total``         counter    ``service``, ``operation``, ``code``
``orchestrator_calls_in_flight``           gauge
``orchestrator_retries_total``             counter    ``flow``, ``step``
``orchestrator_compensations_total``       counter    ``flow``, ``step``
``orchestrator_dead_letters_total``        counter    ``code``
``orchestrator_ignored_replies_total``     counter    ``reason``
``orchestrator_consumer_lag``              gauge      ``topic``, ``partition``
``orchestrator_call_cache_events_total``   counter    ``event`` (hit, miss, coalesced, eviction)
``orchestrator_circuit_open``              gauge      ``service`` (1 open or half-open)
``orchestrator_circuit_openings_total``    counter    ``service``
``orchestrator_calls_rejected_total``      counter    ``service``, ``reason``
``orchestrator_rate_limit_wait_seconds``   histogram  ``service``
=========================================  =========  ===================================

Circuits (state and openings) are read at scrape time, for the services that declare
one; rejected calls (``reason``: ``circuit_open``, ``rate_limit``) and rate-limit
waits (only calls that waited) are counted as they happen.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from contracts.error_codes import ERROR_CODES
from orchestrator.errors import SetupError
from orchestrator.runtime.never_raise import never_raises

logger = logging.getLogger(__name__)

_HTTP_CODE = re.compile(r"http\.[1-5][0-9][0-9]")

SAGA_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
CALL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

METRIC_NAMES = (
    "orchestrator_sagas_started_total",
    "orchestrator_sagas_finished_total",
    "orchestrator_saga_duration_seconds",
    "orchestrator_sagas_in_flight",
    "orchestrator_sagas_restored_total",
    "orchestrator_call_duration_seconds",
    "orchestrator_call_errors_total",
    "orchestrator_calls_in_flight",
    "orchestrator_retries_total",
    "orchestrator_compensations_total",
    "orchestrator_dead_letters_total",
    "orchestrator_ignored_replies_total",
    "orchestrator_consumer_lag",
    "orchestrator_call_cache_events_total",
    "orchestrator_circuit_open",
    "orchestrator_circuit_openings_total",
    "orchestrator_calls_rejected_total",
    "orchestrator_rate_limit_wait_seconds",
)
"""Every metric the coordinator exposes (the dashboard's test checks against it)."""


class CoordinatorMetrics:
    """The counters, histograms and gauges of one coordinator."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else _registry_with_process_metrics()
        r = self.registry
        self._started = Counter(
            "orchestrator_sagas_started", "Sagas started, by flow.", ["flow"], registry=r
        )
        self._finished = Counter(
            "orchestrator_sagas_finished",
            "Sagas that published their result, by flow, status and completeness.",
            ["flow", "status", "complete"],
            registry=r,
        )
        self._saga_duration = Histogram(
            "orchestrator_saga_duration_seconds",
            "From a saga's start to its result, by flow and status.",
            ["flow", "status"],
            buckets=SAGA_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "orchestrator_sagas_in_flight", "Sagas running on this instance.", registry=r
        )
        self.restored = Counter(
            "orchestrator_sagas_restored", "Sagas resumed from the changelog.", registry=r
        )
        self._call_duration = Histogram(
            "orchestrator_call_duration_seconds",
            "One attempt of a step's call (or compensation), from dispatch to its answer.",
            ["service", "operation"],
            buckets=CALL_BUCKETS,
            registry=r,
        )
        self._call_errors = Counter(
            "orchestrator_call_errors",
            "Call attempts answered with an error, by service, operation and error code.",
            ["service", "operation", "code"],
            registry=r,
        )
        self.calls_in_flight = Gauge(
            "orchestrator_calls_in_flight", "In-process calls running now.", registry=r
        )
        self._retries = Counter(
            "orchestrator_retries",
            "Call attempts after the first (retries), by flow and step.",
            ["flow", "step"],
            registry=r,
        )
        self._compensations = Counter(
            "orchestrator_compensations",
            "Compensations started (first attempts of undo calls), by flow and step.",
            ["flow", "step"],
            registry=r,
        )
        self._dead_letters = Counter(
            "orchestrator_dead_letters",
            "Records sent to the dead-letter topic, by code.",
            ["code"],
            registry=r,
        )
        self._ignored = Counter(
            "orchestrator_ignored_replies",
            "Late or stray replies (and timers) ignored, by reason.",
            ["reason"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "orchestrator_consumer_lag",
            "Records behind the partition's high watermark, per consumed partition.",
            ["topic", "partition"],
            registry=r,
        )
        self._rejected = Counter(
            "orchestrator_calls_rejected",
            "Calls not made, by service and reason (circuit_open, rate_limit).",
            ["service", "reason"],
            registry=r,
        )
        self._rate_limit_wait = Histogram(
            "orchestrator_rate_limit_wait_seconds",
            "How long calls waited for their turn under their service's rate limit "
            "(calls that waited), by service.",
            ["service"],
            buckets=CALL_BUCKETS,
            registry=r,
        )
        self._flow_children: dict[str, _FlowChildren] = {}
        self._wait_children: dict[str, Histogram] = {}
        self._call_children: dict[tuple[str, str], Histogram] = {}
        self._error_children: dict[tuple[str, str, str], Counter] = {}
        self._children: dict[tuple[object, ...], Counter] = {}
        self._lag_series: set[tuple[str, str]] = set()
        """(topic, partition) series the lag gauge holds now."""

    def watch(
        self,
        *,
        sagas: Callable[[], int],
        calls: Callable[[], int],
        cache: Callable[[], Mapping[str, int]] = dict,
    ) -> None:
        """Read these from the coordinator at scrape time (no hot-path cost): sagas and
        calls in flight, and the call cache's counters by event."""
        self.in_flight.set_function(lambda: float(sagas()))
        self.calls_in_flight.set_function(lambda: float(calls()))
        self.registry.register(_CacheEvents(cache))

    def watch_circuits(self, circuits: Callable[[], Mapping[str, tuple[bool, int]]]) -> None:
        """Read the circuits at scrape time: by service, (open or half-open, openings)."""
        self.registry.register(_Circuits(circuits))

    # -- the hot path: cached children ---------------------------------------
    # Every hook is wrapped by ``never_raises``: a metrics problem never ends a
    # saga or a loop.

    @never_raises("metrics (saga_started)", None)
    def saga_started(self, flow: str) -> None:
        self._of_flow(flow).started.inc()

    @never_raises("metrics (saga_restored)", None)
    def saga_restored(self) -> None:
        self.restored.inc()

    @never_raises("metrics (saga_finished)", None)
    def saga_finished(self, flow: str, *, status: str, complete: bool, duration_s: float) -> None:
        children = self._of_flow(flow)
        key = (status, complete)
        finished = children.finished.get(key)
        if finished is None:
            finished = children.finished[key] = (
                self._finished.labels(flow, status, "true" if complete else "false"),
                self._saga_duration.labels(flow, status),
            )
        finished[0].inc()
        finished[1].observe(duration_s)

    @never_raises("metrics (call_answered)", None)
    def call_answered(self, service: str, operation: str, duration_s: float) -> None:
        key = (service, operation)
        child = self._call_children.get(key)
        if child is None:
            child = self._call_children[key] = self._call_duration.labels(service, operation)
        child.observe(duration_s)

    @never_raises("metrics (call_failed)", None)
    def call_failed(self, service: str, operation: str, code: str) -> None:
        """``code`` is bounded (:func:`label_code`): a remote adapter's free-form code
        must not grow the series without limit."""
        key = (service, operation, label_code(code))
        child = self._error_children.get(key)
        if child is None:
            child = self._error_children[key] = self._call_errors.labels(*key)
        child.inc()

    @never_raises("metrics (retried)", None)
    def retried(self, flow: str, step: str) -> None:
        self._child(self._retries, flow, step).inc()

    @never_raises("metrics (compensating)", None)
    def compensating(self, flow: str, step: str) -> None:
        self._child(self._compensations, flow, step).inc()

    @never_raises("metrics (dead_lettered)", None)
    def dead_lettered(self, code: str) -> None:
        self._child(self._dead_letters, label_code(code)).inc()

    @never_raises("metrics (call_rejected)", None)
    def call_rejected(self, service: str, reason: str) -> None:
        self._child(self._rejected, service, reason).inc()

    @never_raises("metrics (rate_limit_waited)", None)
    def rate_limit_waited(self, service: str, wait_s: float) -> None:
        child = self._wait_children.get(service)
        if child is None:
            child = self._wait_children[service] = self._rate_limit_wait.labels(service)
        child.observe(wait_s)

    @never_raises("metrics (ignored)", None)
    def ignored(self, reason: str) -> None:
        self._child(self._ignored, reason).inc()

    def _child(self, counter: Counter, *labels: str) -> Counter:
        key = (id(counter), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = counter.labels(*labels)
        return child

    def _of_flow(self, flow: str) -> _FlowChildren:
        children = self._flow_children.get(flow)
        if children is None:
            children = self._flow_children[flow] = _FlowChildren(self._started.labels(flow))
        return children

    # -- consumer lag ----------------------------------------------------------

    @never_raises("metrics (consumer lag)", None)
    def set_lags(
        self, owned: Iterable[tuple[str, int]], lags: Mapping[tuple[str, int], int]
    ) -> None:
        """Report the lag of the partitions this instance owns, and only theirs.

        The gauge's series are rebuilt from ``owned`` each time: a series of a
        partition no longer owned is removed (however it was lost), and an owned
        partition without a measurement keeps its last value.
        """
        owned_now = {(topic, str(partition)) for topic, partition in owned}
        for series in self._lag_series - owned_now:
            with contextlib.suppress(KeyError):
                self.consumer_lag.remove(*series)
        self._lag_series &= owned_now
        for (topic, partition), lag in lags.items():
            series = (topic, str(partition))
            if series in owned_now:
                self.consumer_lag.labels(*series).set(lag)
                self._lag_series.add(series)

    @never_raises("metrics (consumer lag)", None)
    def forget_partition(self, topic: str, partition: int) -> None:
        """A partition went to another instance: its lag is not ours to report."""
        series = (topic, str(partition))
        self._lag_series.discard(series)
        with contextlib.suppress(KeyError):
            self.consumer_lag.remove(*series)


def label_code(code: str) -> str:
    """An error code as a metric label: a registered code (``contracts.error_codes``)
    or an ``http.NNN`` keeps its name; anything else (a remote adapter's own code)
    is ``other``, so the label stays a bounded set."""
    if code in ERROR_CODES or _HTTP_CODE.fullmatch(code):
        return code
    return "other"


class _CacheEvents(Collector):
    """The call cache's own counters, read when scraped."""

    def __init__(self, read: Callable[[], Mapping[str, int]]) -> None:
        self._read = read

    def describe(self) -> Iterable[Metric]:
        yield self._family()

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        for event, count in self._read().items():
            family.add_metric([event], count)
        yield family

    @staticmethod
    def _family() -> CounterMetricFamily:
        return CounterMetricFamily(
            "orchestrator_call_cache_events",
            "Calls of cached operations: answered from the cache (hit), made (miss), "
            "joined to an identical call in flight (coalesced); answers evicted (eviction).",
            labels=["event"],
        )


class _Circuits(Collector):
    """Each declared circuit's state and openings, read when scraped."""

    def __init__(self, read: Callable[[], Mapping[str, tuple[bool, int]]]) -> None:
        self._read = read

    def describe(self) -> Iterable[Metric]:
        yield from self._families()

    def collect(self) -> Iterable[Metric]:
        state, openings = self._families()
        for service, (is_open, opened) in self._read().items():
            state.add_metric([service], 1.0 if is_open else 0.0)
            openings.add_metric([service], opened)
        yield state
        yield openings

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, CounterMetricFamily]:
        return (
            GaugeMetricFamily(
                "orchestrator_circuit_open",
                "1 while the service's circuit is open or half-open (probing), else 0.",
                labels=["service"],
            ),
            CounterMetricFamily(
                "orchestrator_circuit_openings",
                "How often the service's circuit opened.",
                labels=["service"],
            ),
        )


class _FlowChildren:
    __slots__ = ("finished", "started")

    def __init__(self, started: Counter) -> None:
        self.started = started
        self.finished: dict[tuple[str, bool], tuple[Counter, Histogram]] = {}


def _registry_with_process_metrics() -> CollectorRegistry:
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


class MetricsServer:
    """prometheus_client's own HTTP server (a thread) serving one registry at ``/metrics``."""

    def __init__(self, registry: CollectorRegistry, *, host: str, port: int) -> None:
        self._registry = registry
        self._host = host
        self._port = port
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port it listens on (the one asked for, or the one picked for port 0)."""
        return self._server.server_port if self._server is not None else self._port

    def start(self) -> None:
        try:
            self._server, self._thread = start_http_server(
                self._port, addr=self._host, registry=self._registry
            )
        except OSError as error:
            raise SetupError(
                f"Cannot serve metrics on {self._host}:{self._port} ({error.strerror}): "
                "set ORCH_METRICS_PORT to a free port, or 0 to turn the endpoint off."
            ) from None
        logger.info("metrics at http://%s:%d/metrics", self._host, self.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
