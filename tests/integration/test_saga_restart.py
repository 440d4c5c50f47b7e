"""Windows this saga engine opens, forced over the real broker: an instance that stops
while a saga waits to retry or is compensating. The next owner must still give
exactly one result, with the same idempotency keys downstream."""

from __future__ import annotations

import asyncio
import threading
from http import HTTPStatus
from typing import Any

import orjson
import pytest

from contracts.flow import FlowDefinition
from handlers.demo.http_server import HttpCall, JsonHttpServer, RouteResult
from orchestrator.catalog import catalog_from_data
from orchestrator.client import OrchestratorClient
from orchestrator.flow import compile_flow
from orchestrator.flow_files import FlowRegistry
from orchestrator.runtime.coordinator import SagaCoordinator
from orchestrator.settings import CoordinatorSettings
from tests.integration.kafka_io import read_topic

pytestmark = pytest.mark.kafka


def reserve_then_charge(base_url: str, *, charge_retry: dict[str, Any]) -> FlowRegistry:
    """reserve (undone by release) -> charge."""
    catalog = catalog_from_data(
        {
            "services": {
                "shop": {
                    "kind": "http",
                    "allow": {"loopback": True},
                    "base_url": base_url,
                    "operations": {
                        "reserve": {"method": "POST", "path": "/reserve/{id}"},
                        "release": {"method": "POST", "path": "/release/{id}"},
                        "charge": {"method": "POST", "path": "/charge/{id}"},
                    },
                }
            }
        },
        source="test catalog",
    )
    definition = FlowDefinition.model_validate(
        {
            "name": "buy",
            "defaults": {"timeout_ms": 20_000},
            "steps": {
                "reserve": {
                    "service": "shop",
                    "operation": "reserve",
                    "input": {"id": "input.id"},
                    "compensate": {"operation": "release", "input": {"id": "reserve.id"}},
                },
                "charge": {
                    "service": "shop",
                    "operation": "charge",
                    "input": {"id": "reserve.id"},
                    "retry": charge_retry,
                },
            },
            "result": {"charged": "charge"},
        }
    )
    flow = compile_flow(definition, catalog=catalog)
    return FlowRegistry(flows={flow.name: flow}, catalog=catalog)


async def only_result(settings: CoordinatorSettings) -> dict[str, Any]:
    records = await read_topic(
        settings.bootstrap_servers, settings.result_topic, expect=1, settle_s=1.5
    )
    assert len(records) == 1, "exactly one result, whatever the restarts"
    result: dict[str, Any] = orjson.loads(records[0].value)
    return result


async def test_stop_while_compensating_then_the_next_owner_compensates_once(
    settings: CoordinatorSettings,
) -> None:
    release_started = threading.Event()
    unblock = threading.Event()
    releases: list[str] = []

    def shop(call: HttpCall) -> RouteResult:
        action, item = call.segments
        if action == "reserve":
            return HTTPStatus.OK, {"id": item}
        if action == "charge":
            return HTTPStatus.PAYMENT_REQUIRED, {"error": "card declined"}
        releases.append(call.headers["idempotency-key"])
        release_started.set()
        # The first instance's undo hangs until it has been stopped.
        unblock.wait(timeout=30)
        return HTTPStatus.OK, {}

    with JsonHttpServer(shop) as server:
        registry = reserve_then_charge(server.url, charge_retry={"attempts": 1})
        async with SagaCoordinator(registry=registry, settings=settings):
            async with OrchestratorClient(settings) as client:
                await client.send("buy", {"id": "i-1"}, request_id="buy-1")
            assert await asyncio.to_thread(release_started.wait, 30)
        # Stopped mid-compensation: no result yet, the request's offset uncommitted.
        unblock.set()
        async with SagaCoordinator(registry=registry, settings=settings):
            result = await only_result(settings)

    assert result["status"] == "failed"
    assert [error["code"] for error in result["errors"]] == ["step.business_error"]
    statuses = {step["step"]: step["status"] for step in result["steps"]}
    assert statuses == {"reserve": "compensated", "charge": "failed"}
    # Both instances undid the reservation with the same key: the downstream can
    # recognise the second as a repeat.
    assert releases == ["buy-1:reserve:compensate", "buy-1:reserve:compensate"]
    reserves = [call for call in server.calls if call.segments[0] == "reserve"]
    assert {call.headers["idempotency-key"] for call in reserves} == {"buy-1:reserve"}


async def test_stop_while_a_retry_waits_then_the_next_owner_finishes(
    settings: CoordinatorSettings,
) -> None:
    charges: list[str] = []
    first_charge = threading.Event()

    def shop(call: HttpCall) -> RouteResult:
        action, item = call.segments
        if action == "reserve":
            return HTTPStatus.OK, {"id": item}
        if action == "charge":
            charges.append(call.headers["idempotency-key"])
            first_charge.set()
            if len(charges) == 1:
                return HTTPStatus.SERVICE_UNAVAILABLE, {"error": "try later"}
            return HTTPStatus.OK, {"charge_id": "c-1"}
        return HTTPStatus.OK, {}

    with JsonHttpServer(shop) as server:
        # A long backoff: the first instance stops while the retry waits in its heap.
        registry = reserve_then_charge(
            server.url,
            charge_retry={"attempts": 3, "backoff_ms": 60_000, "max_backoff_ms": 60_000},
        )
        async with SagaCoordinator(registry=registry, settings=settings):
            async with OrchestratorClient(settings) as client:
                await client.send("buy", {"id": "i-2"}, request_id="buy-2")
            assert await asyncio.to_thread(first_charge.wait, 30)
            await asyncio.sleep(0.3)  # the 503 has been answered; the retry waits
        fast = reserve_then_charge(server.url, charge_retry={"attempts": 3, "backoff_ms": 1})
        async with SagaCoordinator(registry=fast, settings=settings):
            result = await only_result(settings)

    # The re-run starts over (state is in memory until the saga state log exists):
    # its first charge succeeds, and no call is left behind by the first instance.
    assert result["status"] == "completed"
    assert result["data"] == {"charged": {"charge_id": "c-1"}}
    assert charges == ["buy-2:charge", "buy-2:charge"]
    assert not any(call.segments[0] == "release" for call in server.calls)
