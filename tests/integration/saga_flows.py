"""Helpers for the saga-semantics tests over Kafka: flows built from dicts, and a
real HTTP downstream that records every request it gets.

The downstream's operation ``x`` is ``POST /x/{id}``; by default it answers
``200 {"id": "x-<id>"}``, so a step's output (and what a compensation reads from
it) names the operation that made it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from contracts.flow import FlowDefinition
from handlers.demo.http_server import HttpCall, JsonHttpServer, RouteResult
from orchestrator.catalog import catalog_from_data
from orchestrator.client import OrchestratorClient
from orchestrator.flow import compile_flow
from orchestrator.flow_files import FlowRegistry
from orchestrator.runtime.coordinator import SagaCoordinator
from orchestrator.settings import CoordinatorSettings

FLOW = "saga-semantics"
SHOP = "shop"
RESULT_TIMEOUT_S = 30.0
"""Generous: a result normally arrives well within a few seconds."""


@dataclass(frozen=True, slots=True)
class Hit:
    """One request as the recording server saw it."""

    operation: str
    path: str
    key: str | None
    """The Idempotency-Key header."""
    body: Any
    arrived: float
    """``time.monotonic()`` when the request reached the route."""
    nth: int
    """1 for the first request to this operation, 2 for the second, ..."""
    traceparent: str | None = None
    """The W3C ``traceparent`` header, when the call was traced."""


Behaviour = Callable[[Hit], RouteResult]


def answer_ok(hit: Hit) -> RouteResult:
    """``200 {"id": "<operation>-<id>"}``."""
    return HTTPStatus.OK, {"id": f"{hit.operation}-{hit.path.rsplit('/', 1)[-1]}"}


def answer_status(status: int, message: str = "no") -> Behaviour:
    """Always answer ``status`` with ``{"error": message}``."""

    def behaviour(hit: Hit) -> RouteResult:
        return status, {"error": message}

    return behaviour


class RecordingServer:
    """A real HTTP server on loopback recording each request, in arrival order.

    ``behaviours`` maps an operation (the first path segment) to how it answers;
    others answer :func:`answer_ok`. ``release`` is set when the server stops, so
    behaviours that hang can wait on it and never outlive the test.
    """

    def __init__(self, behaviours: dict[str, Behaviour] | None = None) -> None:
        self.behaviours = dict(behaviours or {})
        self.hits: list[Hit] = []
        self.answered: dict[str, list[float]] = {}
        """``time.monotonic()`` when each answer of an operation was ready, in order."""
        self.in_flight = 0
        self.max_in_flight = 0
        self.release = threading.Event()
        self._lock = threading.Lock()
        self._server = JsonHttpServer(self._route, name="saga-test")

    @property
    def url(self) -> str:
        return self._server.url

    def operations(self) -> list[str]:
        """The operation of every request, in arrival order."""
        with self._lock:
            return [hit.operation for hit in self.hits]

    def of(self, operation: str) -> list[Hit]:
        """The requests to one operation, in arrival order."""
        with self._lock:
            return [hit for hit in self.hits if hit.operation == operation]

    def _route(self, call: HttpCall) -> RouteResult:
        operation = call.segments[0]
        with self._lock:
            hit = Hit(
                operation=operation,
                path=call.path,
                key=call.headers.get("idempotency-key"),
                body=call.body,
                arrived=time.monotonic(),
                nth=1 + sum(1 for seen in self.hits if seen.operation == operation),
                traceparent=call.headers.get("traceparent"),
            )
            self.hits.append(hit)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return self.behaviours.get(operation, answer_ok)(hit)
        finally:
            with self._lock:
                self.in_flight -= 1
                self.answered.setdefault(operation, []).append(time.monotonic())

    def __enter__(self) -> RecordingServer:
        self._server.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.release.set()
        self._server.stop()


def http_service(base_url: str, operations: Iterable[str]) -> dict[str, Any]:
    """A catalog entry whose operation ``x`` is ``POST <base_url>/x/{id}``."""
    return {
        "kind": "http",
        "allow": {"loopback": True},
        "base_url": base_url,
        "operations": {name: {"method": "POST", "path": f"/{name}/{{id}}"} for name in operations},
    }


def kafka_service(command_topic: str) -> dict[str, Any]:
    """A catalog entry for a remote adapter on ``command_topic``."""
    return {"kind": "kafka", "command_topic": command_topic}


def http_step(operation: str, *, reads: str = "input.id", **fields: Any) -> dict[str, Any]:
    """A step calling ``shop.<operation>`` with ``id`` = the expression ``reads``."""
    return {"service": SHOP, "operation": operation, "input": {"id": reads}, **fields}


def undo(operation: str, *, step: str, **fields: Any) -> dict[str, Any]:
    """A ``compensate`` calling ``shop.<operation>`` with the undone step's output id."""
    return {"operation": operation, "input": {"id": f"{step}.id"}, **fields}


def saga_registry(
    services: dict[str, Any], steps: dict[str, Any], *, result: Any = "`null`", **flow: Any
) -> FlowRegistry:
    """The one flow :data:`FLOW` from plain dicts, compiled against ``services``."""
    catalog = catalog_from_data({"services": services}, source="saga test catalog")
    definition = FlowDefinition.model_validate(
        {"name": FLOW, "steps": steps, "result": result, **flow}
    )
    compiled = compile_flow(definition, catalog=catalog)
    return FlowRegistry(flows={compiled.name: compiled}, catalog=catalog)


def shop_registry(
    server: RecordingServer, steps: dict[str, Any], *, result: Any = "`null`", **flow: Any
) -> FlowRegistry:
    """:func:`saga_registry` with every operation the steps name served by ``server``."""
    operations = {step["operation"] for step in steps.values() if step["service"] == SHOP}
    operations |= {
        step["compensate"]["operation"] for step in steps.values() if "compensate" in step
    }
    return saga_registry({SHOP: http_service(server.url, operations)}, steps, result=result, **flow)


@asynccontextmanager
async def running(
    settings: CoordinatorSettings, registry: FlowRegistry
) -> AsyncIterator[tuple[SagaCoordinator, OrchestratorClient]]:
    """A coordinator running ``registry`` and a client, on the test's own topics."""
    async with (
        SagaCoordinator(registry=registry, settings=settings) as coordinator,
        OrchestratorClient(settings) as client,
    ):
        yield coordinator, client


async def run_once(
    settings: CoordinatorSettings,
    registry: FlowRegistry,
    input: dict[str, Any],
    *,
    request_id: str,
) -> dict[str, Any]:
    """Run one request of :data:`FLOW` to its result."""
    async with running(settings, registry) as (_, client):
        return await client.run(FLOW, input, request_id=request_id, timeout_s=RESULT_TIMEOUT_S)


def statuses(result: dict[str, Any]) -> dict[str, str]:
    """Each step's status in a result."""
    return {summary["step"]: summary["status"] for summary in result["steps"]}


def summary_of(result: dict[str, Any], step: str) -> dict[str, Any]:
    """One step's summary in a result."""
    found: list[dict[str, Any]] = [
        summary for summary in result["steps"] if summary["step"] == step
    ]
    assert len(found) == 1, f"no single summary of step {step!r}"
    return found[0]
