"""Saga semantics over the real broker: retries, Retry-After, compensation order,
draining a sibling, failing compensations, defaults, conditions, late replies.

Each test runs a coordinator and a client on its own topics against a real HTTP
server on loopback that records what reached it, in order."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import orjson
import pytest

from contracts import cloudevents
from contracts.flow import FlowDefinition
from handlers.demo.http_server import HttpCall, JsonHttpServer, RouteResult
from orchestrator.catalog import catalog_from_data
from orchestrator.client import OrchestratorClient
from orchestrator.flow import compile_flow
from orchestrator.flow_files import FlowRegistry
from orchestrator.runtime.coordinator import SagaCoordinator
from orchestrator.settings import CoordinatorSettings
from tests.integration.kafka_io import publish_raw, read_topic

pytestmark = pytest.mark.kafka

OPERATIONS = ("a", "b", "c", "slow", "maybe", "extra")


def registry_for(base_url: str, steps: dict[str, Any], result: Any, **flow: Any) -> FlowRegistry:
    """Every operation `x` is `POST /x/{id}`, and its undo `POST /undo_x/{id}`."""
    operations = {
        name: {"method": "POST", "path": f"/{name}/{{id}}"}
        for op in OPERATIONS
        for name in (op, f"undo_{op}")
    }
    catalog = catalog_from_data(
        {
            "services": {
                "shop": {"kind": "http", "base_url": base_url, "operations": operations},
                "remote": {"kind": "kafka", "command_topic": flow.pop("remote_topic", "x")},
            }
        },
        source="test catalog",
    )
    definition = FlowDefinition.model_validate(
        {"name": "saga", "steps": steps, "result": result, **flow}
    )
    compiled = compile_flow(definition, catalog=catalog)
    return FlowRegistry(flows={compiled.name: compiled}, catalog=catalog)


def step(op: str, *, reads: str = "input.id", undo: bool = False, **fields: Any) -> dict[str, Any]:
    definition: dict[str, Any] = {"service": "shop", "operation": op, "input": {"id": reads}}
    if undo:
        definition["compensate"] = {"operation": f"undo_{op}", "input": {"id": f"{op}.id"}}
    return {**definition, **fields}


def ok(call: HttpCall) -> RouteResult:
    return HTTPStatus.OK, {"id": call.segments[-1]}


async def run_saga(
    settings: CoordinatorSettings,
    route: Callable[[HttpCall], RouteResult],
    steps: dict[str, Any],
    result: Any = "`null`",
    **flow: Any,
) -> tuple[dict[str, Any], JsonHttpServer]:
    with JsonHttpServer(route) as server:
        registry = registry_for(server.url, steps, result, **flow)
        async with (
            SagaCoordinator(registry=registry, settings=settings),
            OrchestratorClient(settings) as client,
        ):
            answer = await client.run("saga", {"id": "i-1"}, request_id="req-1", timeout_s=60)
    return answer, server


def trail(server: JsonHttpServer) -> list[str]:
    return [call.segments[0] for call in server.calls]


def statuses(result: dict[str, Any]) -> dict[str, str]:
    return {summary["step"]: summary["status"] for summary in result["steps"]}


async def test_failing_third_step_undoes_the_second_then_the_first(
    settings: CoordinatorSettings,
) -> None:
    def route(call: HttpCall) -> RouteResult:
        if call.segments[0] == "c":
            return HTTPStatus.CONFLICT, {"error": "no"}
        return ok(call)

    result, server = await run_saga(
        settings,
        route,
        {
            "a": step("a", undo=True),
            "b": step("b", reads="a.id", undo=True),
            "c": step("c", reads="b.id"),
        },
    )

    assert result["status"] == "failed"
    assert trail(server) == ["a", "b", "c", "undo_b", "undo_a"]
    keys = [call.headers["idempotency-key"] for call in server.calls]
    assert keys == ["req-1:a", "req-1:b", "req-1:c", "req-1:b:compensate", "req-1:a:compensate"]
    assert statuses(result) == {"a": "compensated", "b": "compensated", "c": "failed"}


async def test_two_timeouts_then_success_on_the_third_attempt(
    settings: CoordinatorSettings,
) -> None:
    release = threading.Event()
    seen: list[str] = []

    def route(call: HttpCall) -> RouteResult:
        seen.append(call.headers["idempotency-key"])
        if len(seen) <= 2:
            release.wait(timeout=10)  # past the step's 300 ms per attempt
        return ok(call)

    try:
        result, _ = await run_saga(
            settings,
            route,
            {"a": step("a", timeout_ms=300, retry={"attempts": 3, "backoff_ms": 10})},
            result="a",
        )
    finally:
        release.set()

    assert result["status"] == "completed"
    assert result["data"] == {"id": "i-1"}
    assert result["steps"][0]["attempts"] == 3
    assert seen == ["req-1:a"] * 3


async def test_a_retry_waits_at_least_retry_after(settings: CoordinatorSettings) -> None:
    arrivals: list[float] = []

    def route(call: HttpCall) -> RouteResult:
        arrivals.append(time.monotonic())
        if len(arrivals) == 1:
            return HTTPStatus.SERVICE_UNAVAILABLE, {"error": "busy"}, {"Retry-After": "1"}
        return ok(call)

    result, _ = await run_saga(
        settings, route, {"a": step("a", retry={"attempts": 2, "backoff_ms": 10})}, result="a"
    )

    assert result["status"] == "completed"
    assert result["steps"][0]["attempts"] == 2
    # backoff_ms alone would retry within 10 ms; Retry-After: 1 holds it a second.
    assert arrivals[1] - arrivals[0] >= 0.95


async def test_a_step_with_a_default_failing_gives_complete_false(
    settings: CoordinatorSettings,
) -> None:
    def route(call: HttpCall) -> RouteResult:
        if call.segments[0] == "extra":
            return HTTPStatus.NOT_FOUND, {"error": "none"}
        return ok(call)

    result, _ = await run_saga(
        settings,
        route,
        {"a": step("a"), "extra": step("extra", default=["fallback"])},
        result={"a": "a", "extra": "extra"},
    )

    assert (result["status"], result["complete"]) == ("completed", False)
    assert result["data"] == {"a": {"id": "i-1"}, "extra": ["fallback"]}
    assert statuses(result) == {"a": "ok", "extra": "failed"}


async def test_a_sibling_in_flight_is_compensated_once_it_answers(
    settings: CoordinatorSettings,
) -> None:
    def route(call: HttpCall) -> RouteResult:
        name = call.segments[0]
        if name == "slow":
            time.sleep(1.0)
        if name == "b":
            return HTTPStatus.BAD_REQUEST, {"error": "refused"}
        return ok(call)

    result, server = await run_saga(
        settings, route, {"slow": step("slow", undo=True), "b": step("b")}
    )

    assert result["status"] == "failed"
    # b failed first; the saga waited for `slow`, then undid it, then answered.
    assert trail(server).index("undo_slow") > trail(server).index("slow")
    assert trail(server).count("undo_slow") == 1
    assert statuses(result) == {"slow": "compensated", "b": "failed"}


async def test_a_compensation_that_keeps_failing_ends_compensation_failed(
    settings: CoordinatorSettings,
) -> None:
    def route(call: HttpCall) -> RouteResult:
        name = call.segments[0]
        if name == "b":
            return HTTPStatus.CONFLICT, {"error": "no"}
        if name == "undo_a":
            return HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "undo is broken"}
        return ok(call)

    undo = {"operation": "undo_a", "input": {"id": "a.id"}, "retry": {"attempts": 3}}
    result, server = await run_saga(
        settings,
        route,
        {"a": step("a", compensate=undo), "b": step("b", reads="a.id")},
        defaults={"retry": {"backoff_ms": 5}},
    )

    assert result["status"] == "compensation_failed"
    assert trail(server).count("undo_a") == 3
    undo_error = result["errors"][-1]
    assert (undo_error["code"], undo_error["step"], undo_error["call"]) == (
        "compensation.failed",
        "a",
        "a",
    )
    assert "undo is broken" in undo_error["message"]
    assert statuses(result)["a"] == "compensation_failed"


async def test_when_false_skips_the_step(settings: CoordinatorSettings) -> None:
    result, server = await run_saga(
        settings,
        ok,
        {"a": step("a"), "maybe": step("maybe", when="input.wanted")},
        result={"a": "a", "maybe": "maybe"},
    )

    assert (result["status"], result["complete"]) == ("completed", True)
    assert result["data"] == {"a": {"id": "i-1"}, "maybe": None}
    assert statuses(result)["maybe"] == "skipped"
    assert "maybe" not in trail(server)


async def test_a_late_reply_after_the_result_changes_nothing(
    settings: CoordinatorSettings, topic_prefix: str
) -> None:
    command_topic = f"{topic_prefix}.remote.commands"
    registry = registry_for(
        "http://127.0.0.1:9",
        {
            "r": {
                "service": "remote",
                "operation": "get",
                "input": {"id": "input.id"},
                "timeout_ms": 400,
            }
        },
        "r",
        remote_topic=command_topic,
    )
    async with (
        SagaCoordinator(registry=registry, settings=settings) as coordinator,
        OrchestratorClient(settings) as client,
    ):
        result = await client.run("saga", {"id": "i-1"}, request_id="late-1", timeout_s=60)
        # Nobody answered in time; now the adapter's reply arrives, late.
        [command] = await read_topic(settings.bootstrap_servers, command_topic, expect=1)
        correlation = orjson.loads(command.value)["correlation_id"]
        reply = {
            "request_id": "late-1",
            "correlation_id": correlation,
            "status": "ok",
            "output": {"late": True},
        }
        await publish_raw(
            settings.bootstrap_servers,
            settings.reply_topic,
            value=orjson.dumps(reply),
            key=b"late-1",
            headers=cloudevents.build_headers(
                event_id=f"{correlation}:reply",
                event_type=cloudevents.TYPE_STEP_REPLY,
                source="urn:test",
                time_ms=0,
            ),
        )
        for _ in range(100):
            if sum(coordinator.ignored_replies.values()):
                break
            await asyncio.sleep(0.1)
        results = await read_topic(
            settings.bootstrap_servers, settings.result_topic, expect=1, settle_s=1
        )

    assert result["status"] == "failed"
    assert result["errors"][0]["code"] == "step.timeout"
    assert len(results) == 1, "a late reply never causes a second result"
    assert coordinator.ignored_replies == {"unknown_saga": 1}
