"""Bounded evaluation over the real broker: a mapping over a 1,000,000-item reply
fails its saga with ``step.mapping_budget``, while sagas running beside it keep
their latency; an in-process SDK adapter that blocks stalls only its own calls."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest

from handlers.demo.http_server import HttpCall, JsonHttpServer, RouteResult
from orchestrator.builder import FlowBuilder
from orchestrator.catalog import catalog_from_data
from orchestrator.client import OrchestratorClient
from orchestrator.flow import compile_flow
from orchestrator.flow_files import FlowRegistry
from orchestrator.runtime.coordinator import SagaCoordinator
from orchestrator.settings import CoordinatorSettings

pytestmark = pytest.mark.kafka

OTHERS = 20
HUGE = orjson.dumps({"items": list(range(1_000_000))})  # ~7 MB


def route(call: HttpCall) -> RouteResult:
    if call.path.startswith("/huge"):
        return 200, orjson.Fragment(HUGE)
    return 200, {"id": call.path.rsplit("/", 1)[-1]}


def registry(base_url: str) -> FlowRegistry:
    catalog = catalog_from_data(
        {
            "services": {
                "data": {
                    "kind": "http",
                    "allow": {"loopback": True},
                    "base_url": base_url,
                    "max_response_bytes": 50_000_000,
                    "operations": {"huge": {"path": "/huge"}, "small": {"path": "/small/{id}"}},
                }
            }
        },
        source="test catalog",
    )
    explode = FlowBuilder("explode", timeout_ms=30_000)
    explode.step(
        "all",
        service="data",
        operation="huge",
        input={},
        output={"big": "reply.items[?@ > `10`]"},
    )
    small = FlowBuilder("small", timeout_ms=30_000)
    small.step("one", service="data", operation="small", input={"id": "input.id"})
    flows = [
        compile_flow(explode.result("all").build(), catalog=catalog),
        compile_flow(small.result("one").build(), catalog=catalog),
    ]
    return FlowRegistry(flows={flow.name: flow for flow in flows}, catalog=catalog)


async def timed(client: OrchestratorClient, n: int) -> tuple[float, Any]:
    await asyncio.sleep(n * 0.02)  # spread over the explosive saga's run
    started = time.monotonic()
    result = await client.run("small", {"id": f"s{n}"}, timeout_s=60)
    return time.monotonic() - started, result


async def test_an_exploding_mapping_fails_its_saga_and_others_keep_their_latency(
    settings: CoordinatorSettings,
) -> None:
    with JsonHttpServer(route) as server:
        async with (
            SagaCoordinator(registry=registry(server.url), settings=settings),
            OrchestratorClient(settings) as client,
        ):
            await client.run("small", {"id": "warm-up"}, timeout_s=60)
            exploded, *others = await asyncio.gather(
                client.run("explode", {}, timeout_s=60),
                *(timed(client, n) for n in range(OTHERS)),
            )

    assert exploded["status"] == "failed"
    [error] = exploded["errors"]
    assert (error["code"], error["step"]) == ("step.mapping_budget", "all")
    assert [result["status"] for _, result in others] == ["completed"] * OTHERS
    slowest = max(latency for latency, _ in others)
    assert slowest < 2.0, f"the slowest other saga took {slowest:.2f} s"


def adapters_registry() -> FlowRegistry:
    catalog = catalog_from_data(
        {
            "services": {
                "blocking": {
                    "kind": "python",
                    "adapter": "tests.integration.blocking_adapters:blocking",
                },
                "quick": {"kind": "python", "adapter": "tests.integration.blocking_adapters:quick"},
            }
        },
        source="test catalog",
    )
    flows = []
    for name, service, operation, timeout_ms in (
        ("stuck", "blocking", "block", 500),
        ("quick", "quick", "answer", 30_000),
    ):
        builder = FlowBuilder(name, timeout_ms=timeout_ms)
        builder.step("one", service=service, operation=operation, input={"id": "input.id"})
        flows.append(compile_flow(builder.result("one").build(), catalog=catalog))
    return FlowRegistry(flows={flow.name: flow for flow in flows}, catalog=catalog)


async def quick_run(client: OrchestratorClient, n: int) -> tuple[float, Any]:
    await asyncio.sleep(n * 0.05)
    started = time.monotonic()
    result = await client.run("quick", {"id": f"q{n}"}, timeout_s=60)
    return time.monotonic() - started, result


async def test_a_blocking_in_process_adapter_does_not_stall_other_sagas(
    settings: CoordinatorSettings,
) -> None:
    async with (
        SagaCoordinator(registry=adapters_registry(), settings=settings),
        OrchestratorClient(settings) as client,
    ):
        await client.run("quick", {"id": "warm-up"}, timeout_s=60)
        stuck, *others = await asyncio.gather(
            client.run("stuck", {"id": "s"}, timeout_s=60),
            *(quick_run(client, n) for n in range(OTHERS)),
        )

    assert stuck["status"] == "failed"
    assert stuck["errors"][0]["code"] == "step.timeout"
    assert [result["status"] for _, result in others] == ["completed"] * OTHERS
    slowest = max(latency for latency, _ in others)
    # The adapter blocks its own thread for 3 s; on the coordinator's loop every
    # saga here would have waited for it.
    assert slowest < 2.0, f"the slowest other saga took {slowest:.2f} s"
