"""Resilience per service over the real broker, against a real HTTP server on loopback.

- Circuit breaker: once enough calls failed, sagas fail with ``circuit.open`` and the
  server's hit count stops growing; a step with ``retry`` retries ``circuit.open``
  like any technical error, and once the server recovers and ``open_ms`` has passed,
  a probe gets through and the circuit closes.
- Rate limit: the server never sees more calls than ``burst + per_second * t`` in any
  span ``t``, and calls that waited for their turn still had their whole timeout.
"""

from __future__ import annotations

import asyncio
import threading
import time
from http import HTTPStatus
from typing import Any

import pytest

from contracts.flow import RetryPolicy
from handlers.demo.http_server import HttpCall, JsonHttpServer, RouteResult
from orchestrator.builder import FlowBuilder
from orchestrator.catalog import catalog_from_data
from orchestrator.client import OrchestratorClient
from orchestrator.flow import compile_flow
from orchestrator.flow_files import FlowRegistry
from orchestrator.runtime.coordinator import SagaCoordinator
from orchestrator.settings import CoordinatorSettings

pytestmark = pytest.mark.kafka

RESULT_TIMEOUT_S = 60.0


class Flaky:
    """``GET /items/{n}`` on loopback: 503 while ``failing``, else 200; counts hits."""

    def __init__(self) -> None:
        self.failing = False
        self.arrivals: list[float] = []
        """Monotonic time of each request."""
        self._lock = threading.Lock()
        self._server = JsonHttpServer(self._route, name="flaky")

    def _route(self, call: HttpCall) -> RouteResult:
        with self._lock:
            self.arrivals.append(time.monotonic())
        if self.failing:
            return HTTPStatus.SERVICE_UNAVAILABLE, {"error": "down"}
        return HTTPStatus.OK, {"item": call.segments[-1]}

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def hits(self) -> int:
        with self._lock:
            return len(self.arrivals)

    def __enter__(self) -> Flaky:
        self._server.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.stop()


def registry_for(base_url: str, **service: Any) -> FlowRegistry:
    """Flows ``fragile`` (no retry) and ``patient`` (many quick retries) reading one item."""
    catalog = catalog_from_data(
        {
            "services": {
                "items": {
                    "kind": "http",
                    "base_url": base_url,
                    "allow": {"loopback": True},
                    "operations": {"get": {"method": "GET", "path": "/items/{n}"}},
                    **service,
                }
            }
        },
        source="resilience test catalog",
    )
    flows = {}
    for name, retry in (
        ("fragile", None),
        ("patient", RetryPolicy(attempts=40, backoff_ms=200, multiplier=1, max_backoff_ms=200)),
    ):
        flow = FlowBuilder(name, timeout_ms=1_000)
        flow.step("fetch", service="items", operation="get", input={"n": "input.n"}, retry=retry)
        flow.result({"item": "fetch.item"})
        compiled = compile_flow(flow.build(), catalog=catalog)
        flows[name] = compiled
    return FlowRegistry(flows=flows, catalog=catalog)


async def run(client: OrchestratorClient, flow: str, request_id: str, n: int) -> dict[str, Any]:
    return await client.run(flow, {"n": n}, request_id=request_id, timeout_s=RESULT_TIMEOUT_S)


def adapter_code(result: dict[str, Any]) -> str | None:
    assert result["status"] == "failed", result
    code: str | None = result["errors"][0]["adapter_code"]
    return code


def metric(coordinator: SagaCoordinator, name: str, **labels: str) -> float:
    return coordinator.metrics.registry.get_sample_value(name, labels) or 0.0


async def test_an_open_circuit_keeps_calls_off_the_server_until_a_probe_finds_it_back(
    settings: CoordinatorSettings,
) -> None:
    circuit = {"failure_ratio": 0.5, "min_calls": 4, "window_ms": 60_000, "open_ms": 1_500}
    with Flaky() as server:
        server.failing = True
        registry = registry_for(server.url, circuit=circuit)
        async with (
            SagaCoordinator(registry=registry, settings=settings) as coordinator,
            OrchestratorClient(settings) as client,
        ):
            for n in range(4):
                assert adapter_code(await run(client, "fragile", f"down-{n}", n)) == "http.503"
            assert server.hits == 4
            assert metric(coordinator, "orchestrator_circuit_open", service="items") == 1

            # Open: sagas fail at once, and not one call reaches the server.
            refused = [run(client, "fragile", f"open-{n}", n) for n in range(6)]
            for result in await asyncio.gather(*refused):
                assert adapter_code(result) == "circuit.open"
            assert server.hits == 4, "the server's hit count stopped growing"

            # The server recovers; a step with retry meets circuit.open until open_ms
            # has passed, then its probe gets through and closes the circuit.
            server.failing = False
            patient = await run(client, "patient", "patient", 99)
            assert (patient["status"], patient["data"]) == ("completed", {"item": "99"})
            [step] = patient["steps"]
            assert step["attempts"] >= 2, "circuit.open was retried by the step's retry"
            assert server.hits == 5, "one probe, then closed"
            assert metric(coordinator, "orchestrator_circuit_open", service="items") == 0

            # Closed again: every call reaches the server.
            for n in range(3):
                result = await run(client, "fragile", f"back-{n}", n)
                assert result["status"] == "completed", result
            assert server.hits == 8
            assert metric(coordinator, "orchestrator_circuit_openings_total", service="items") == 1
            rejected = metric(
                coordinator,
                "orchestrator_calls_rejected_total",
                service="items",
                reason="circuit_open",
            )
            assert rejected >= 6 + step["attempts"] - 1


async def test_the_server_never_sees_more_than_the_rate_limit_allows(
    settings: CoordinatorSettings,
) -> None:
    per_second, burst, sagas = 20, 5, 60
    rate_limit = {"per_second": per_second, "burst": burst, "max_wait_ms": 30_000}
    with Flaky() as server:
        registry = registry_for(server.url, rate_limit=rate_limit)
        async with (
            SagaCoordinator(registry=registry, settings=settings) as coordinator,
            OrchestratorClient(settings) as client,
        ):
            results = await asyncio.gather(
                *(run(client, "fragile", f"paced-{n}", n) for n in range(sagas))
            )
            waited = metric(
                coordinator, "orchestrator_rate_limit_wait_seconds_count", service="items"
            )

    # The last calls waited ~2.75 s for their turn with a 1 s step timeout: waiting
    # for a turn did not count against it.
    for n, result in enumerate(results):
        assert (result["status"], result["data"]) == ("completed", {"item": str(n)}), result
    arrivals = sorted(server.arrivals)
    assert len(arrivals) == sagas
    for span in (0.5, 1.0, 2.0):
        # Generous: a quarter second of slack for the loop and the sockets.
        allowed = burst + per_second * (span + 0.25)
        for first in arrivals:
            inside = sum(1 for at in arrivals if first <= at < first + span)
            assert inside <= allowed, f"{inside} calls within {span} s (allowed {allowed})"
    assert waited >= sagas - burst - 5
