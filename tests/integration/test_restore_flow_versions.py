"""A saga restored after a deploy that changed its flow keeps the definition it
started with; if that definition no longer loads, it fails with ``flow.changed``."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from orchestrator.client import OrchestratorClient
from orchestrator.flow_files import FlowRegistry
from orchestrator.runtime.coordinator import SagaCoordinator
from orchestrator.settings import CoordinatorSettings
from tests.integration.saga_flows import (
    FLOW,
    RESULT_TIMEOUT_S,
    Hit,
    RecordingServer,
    answer_ok,
    http_service,
    saga_registry,
)

pytestmark = pytest.mark.kafka


def flow_of(server: RecordingServer, *, version: int, service: str = "shop") -> FlowRegistry:
    return saga_registry(
        {service: http_service(server.url, ["get"])},
        {"call": {"service": service, "operation": "get", "input": {"id": "input.id"}}},
        result={"made_by": f"`{version}`", "id": "call.id"},
        version=version,
        defaults={"timeout_ms": 30_000},
    )


@asynccontextmanager
async def saga_left_mid_call(settings: CoordinatorSettings) -> AsyncIterator[RecordingServer]:
    """A coordinator on flow version 1 stopped while request ``deploy-1`` waits for its
    call; the call answers once the block is entered (for the next coordinator)."""
    entered, release = threading.Event(), threading.Event()

    def held(hit: Hit) -> Any:
        entered.set()
        release.wait(timeout=30)
        return answer_ok(hit)

    with RecordingServer({"get": held}) as server:
        async with SagaCoordinator(registry=flow_of(server, version=1), settings=settings):
            async with OrchestratorClient(settings) as client:
                await client.send(FLOW, {"id": "a"}, request_id="deploy-1")
            assert await asyncio.to_thread(entered.wait, 30)
        release.set()
        yield server


async def test_a_restored_saga_keeps_the_flow_version_it_started_with(
    settings: CoordinatorSettings,
) -> None:
    # The client before the coordinator: it reads results from the moment it starts.
    async with (
        saga_left_mid_call(settings) as server,
        OrchestratorClient(settings) as client,
        SagaCoordinator(registry=flow_of(server, version=2), settings=settings),
    ):
        resumed = await client.wait_for("deploy-1", timeout_s=RESULT_TIMEOUT_S)
        fresh = await client.run(FLOW, {"id": "b"}, timeout_s=RESULT_TIMEOUT_S)

    assert (resumed["status"], resumed["flow_version"]) == ("completed", 1)
    assert resumed["data"] == {"made_by": 1, "id": "get-a"}
    assert (fresh["flow_version"], fresh["data"]) == (2, {"made_by": 2, "id": "get-b"})


async def test_a_restored_saga_whose_flow_no_longer_loads_fails_with_flow_changed(
    settings: CoordinatorSettings,
) -> None:
    # The deploy removed (renamed) the service the old definition calls.
    async with (
        saga_left_mid_call(settings) as server,
        OrchestratorClient(settings) as client,
        SagaCoordinator(registry=flow_of(server, version=2, service="renamed"), settings=settings),
    ):
        result = await client.wait_for("deploy-1", timeout_s=RESULT_TIMEOUT_S)

    assert result["status"] == "failed"
    [error] = result["errors"]
    assert error["code"] == "flow.changed"
    assert "version 1" in error["message"]
    assert "no longer loads" in error["message"]
