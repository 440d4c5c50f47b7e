"""The coordinator's metrics: names, bounded labels, the endpoint, and the Grafana
dashboard in ``contrib/grafana`` querying only metrics and labels that exist."""

from __future__ import annotations

import json
import re
import socket
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.errors import SetupError
from orchestrator.runtime.metrics import (
    METRIC_NAMES,
    CoordinatorMetrics,
    MetricsServer,
    label_code,
)
from orchestrator.settings import CoordinatorSettings

DASHBOARD = Path(__file__).parents[3] / "contrib" / "grafana" / "orchestrator.json"


def exercised() -> CoordinatorMetrics:
    """Metrics with every labelled series touched once."""
    metrics = CoordinatorMetrics()
    metrics.watch(sagas=lambda: 3, calls=lambda: 2, cache=lambda: {"hit": 4, "miss": 1})
    metrics.saga_started("order-details")
    metrics.saga_finished("order-details", status="completed", complete=True, duration_s=0.02)
    metrics.call_answered("orders", "get_order", 0.004)
    metrics.call_failed("orders", "get_order", "http.503")
    metrics.retried("order-details", "order")
    metrics.compensating("order-details", "order")
    metrics.dead_lettered("flow.unknown")
    metrics.ignored("unknown_saga")
    metrics.saga_restored()
    metrics.set_lags([("orchestrator.requests", 0)], {("orchestrator.requests", 0): 5})
    metrics.watch_circuits(lambda: {"orders": (True, 2)})
    metrics.call_rejected("orders", "circuit_open")
    metrics.rate_limit_waited("orders", 0.05)
    return metrics


def series(metrics: CoordinatorMetrics) -> dict[str, set[str]]:
    """Each sample name exposed, with its label names."""
    found: dict[str, set[str]] = {}
    text = generate_latest(metrics.registry).decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, set()).update(sample.labels)
    return found


def test_every_declared_metric_is_exposed_with_bounded_labels() -> None:
    exposed = series(exercised())
    for name in METRIC_NAMES:
        assert name in exposed or f"{name}_count" in exposed, name
    labels = set().union(*(exposed[name] for name in exposed if name.startswith("orchestrator_")))
    assert labels <= {
        "flow",
        "step",
        "status",
        "complete",
        "service",
        "operation",
        "code",
        "reason",
        "topic",
        "partition",
        "event",
        "le",
    }


def test_counters_move_by_what_happened_and_children_are_cached() -> None:
    metrics = exercised()
    metrics.saga_finished("order-details", status="completed", complete=True, duration_s=0.5)
    metrics.saga_finished("order-details", status="failed", complete=False, duration_s=1.0)
    text = generate_latest(metrics.registry).decode()
    assert (
        'orchestrator_sagas_finished_total{complete="true",flow="order-details",'
        'status="completed"} 2.0' in text
    )
    assert 'orchestrator_saga_duration_seconds_count{flow="order-details",status="failed"} 1.0' in (
        text
    )
    assert "orchestrator_sagas_in_flight 3.0" in text
    assert "orchestrator_calls_in_flight 2.0" in text
    assert 'orchestrator_call_cache_events_total{event="hit"} 4.0' in text
    assert len(metrics._flow_children) == 1
    metrics.forget_partition("orchestrator.requests", 0)
    metrics.forget_partition("orchestrator.requests", 0)  # twice: no error
    assert "orchestrator_consumer_lag{" not in generate_latest(metrics.registry).decode()


def test_the_endpoint_serves_the_registry_and_a_taken_port_is_one_sentence() -> None:
    metrics = exercised()
    server = MetricsServer(metrics.registry, host="127.0.0.1", port=0)
    server.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as reply:
            body = reply.read().decode()
        assert 'orchestrator_sagas_started_total{flow="order-details"} 1.0' in body
        assert "process_cpu_seconds_total" in body
        taken = MetricsServer(metrics.registry, host="127.0.0.1", port=server.port)
        with pytest.raises(SetupError, match="ORCH_METRICS_PORT"):
            taken.start()
    finally:
        server.stop()
    with socket.socket() as probe:  # the port is free again
        probe.bind(("127.0.0.1", server.port))


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    queries += [
        variable["definition"]
        for variable in dashboard["templating"]["list"]
        if variable.get("definition")
    ]
    return queries


def test_the_dashboard_queries_only_metrics_and_labels_that_exist() -> None:
    exposed = series(exercised())
    queries = dashboard_queries()
    assert len(queries) >= 15
    used = set()
    for query in queries:
        names = set(re.findall(r"\borchestrator_[a-z_]+", query))
        assert names, query
        used |= names
        for name in names:
            assert name in exposed, f"{name} (in {query!r}) is not a coordinator metric"
        labels = set().union(*(exposed[name] for name in names)) | {"le", "instance", "job"}
        for group in re.findall(r"by \(([^)]*)\)", query):
            for label in (part.strip() for part in group.split(",")):
                assert label in labels, f"{label} is not a label of {names} ({query!r})"
        for label in re.findall(r"([a-z_]+)\s*(?:=~|!=|=)\s*\"", query):
            assert label in labels, f"{label} is not a label of {names} ({query!r})"
    # Every metric is on the dashboard.
    for name in METRIC_NAMES:
        assert any(used_name.startswith(name) for used_name in used), name


@pytest.mark.parametrize("port", [-1, 70_000])
def test_a_metrics_port_out_of_range_is_one_sentence(port: int) -> None:
    with pytest.raises(SetupError, match="ORCH_METRICS_PORT must be a port"):
        CoordinatorSettings(metrics_port=port)


def test_free_form_error_codes_are_bounded_and_children_cached() -> None:
    metrics = CoordinatorMetrics()
    for code in ("http.503", "step.timeout", "inventory.out_of_stock_for_sku_123", "http.5xx!"):
        metrics.call_failed("inv", "reserve", code)
    metrics.dead_lettered("something-new")
    for _ in range(3):
        metrics.retried("f", "s")
        metrics.compensating("f", "s")
        metrics.ignored("unknown_saga")
    codes = {
        sample.labels["code"]
        for family in metrics.registry.collect()
        if family.name in ("orchestrator_call_errors", "orchestrator_dead_letters")
        for sample in family.samples
        if sample.name.endswith("_total")
    }
    assert codes == {"http.503", "step.timeout", "other"}
    assert label_code("flow.unknown") == "flow.unknown"
    # One cached child per (counter, labels): later increments skip .labels().
    assert len(metrics._children) == 4
    text = generate_latest(metrics.registry).decode()
    assert 'orchestrator_retries_total{flow="f",step="s"} 3.0' in text


class Broken:
    """A metric (or child) whose every use raises."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"broken metric: {name}")


def test_no_hook_ever_raises() -> None:
    metrics = CoordinatorMetrics()
    for name in (
        "_started",
        "_finished",
        "_saga_duration",
        "_call_duration",
        "_call_errors",
        "_retries",
        "_compensations",
        "_dead_letters",
        "_ignored",
        "consumer_lag",
        "restored",
    ):
        setattr(metrics, name, Broken())
    metrics.saga_started("f")
    metrics.saga_restored()
    metrics.saga_finished("f", status="completed", complete=True, duration_s=0.1)
    metrics.call_answered("s", "o", 0.1)
    metrics.call_failed("s", "o", "http.503")
    metrics.retried("f", "s")
    metrics.compensating("f", "s")
    metrics.dead_lettered("reply.invalid")
    metrics.ignored("unknown_saga")
    metrics.set_lags([("t", 0)], {("t", 0): 1})
    metrics.forget_partition("t", 0)
