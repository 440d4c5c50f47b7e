"""The reference scenario over the real broker: HTTP services + a Kafka-native adapter."""

from __future__ import annotations

import threading
from http import HTTPStatus
from typing import Any

import pytest

from contracts import cloudevents
from contracts.events import ResultEvent, StepCommand
from handlers.demo.http_server import HttpCall, JsonHttpServer, RouteResult
from handlers.demo.services import DemoHttpServices
from orchestrator.builder import FlowBuilder
from orchestrator.catalog import catalog_from_data
from orchestrator.client import OrchestratorClient
from orchestrator.flow import compile_flow
from orchestrator.flow_files import FlowRegistry
from orchestrator.runtime.coordinator import SagaCoordinator
from orchestrator.settings import CoordinatorSettings
from tests.integration.kafka_io import read_topic

pytestmark = pytest.mark.kafka


@pytest.fixture
async def client(
    settings: CoordinatorSettings, demo_registry: FlowRegistry, inventory_worker: None
) -> Any:
    async with (
        SagaCoordinator(registry=demo_registry, settings=settings),
        OrchestratorClient(settings) as client,
    ):
        yield client


async def test_order_is_composed_from_all_services(client: OrchestratorClient) -> None:
    result = await client.run("order-details", {"order_id": "o-1"}, timeout_s=60)

    ResultEvent.model_validate(result)
    assert result["status"] == "completed"
    assert result["errors"] == []
    assert result["data"] == {
        "order_id": "o-1",
        "customer": {"name": "Ada Lovelace", "email": "ada@example.com"},
        "store": {"name": "Soho", "city": "London"},
        # p-3 (the grinder) has no stock and is dropped; total covers the rest.
        "lines": [
            {
                "product_id": "p-1",
                "name": "Espresso beans 1kg",
                "unit_price": 24.5,
                "qty": 2,
                "line_total": 49.0,
            },
            {
                "product_id": "p-2",
                "name": "Milk jug",
                "unit_price": 12.0,
                "qty": 1,
                "line_total": 12.0,
            },
        ],
        "total": 61.0,
    }
    summary = {step["step"]: (step["status"], step["calls"]) for step in result["steps"]}
    assert summary == {
        "order": ("ok", 1),
        "user": ("ok", 1),
        "store": ("ok", 1),
        "products": ("ok", 3),
        "stock": ("ok", 1),
    }


async def test_missing_product_is_dropped_and_reported(client: OrchestratorClient) -> None:
    result = await client.run("order-details", {"order_id": "o-2"}, timeout_s=60)

    assert result["status"] == "completed"
    assert [line["product_id"] for line in result["data"]["lines"]] == ["p-2"]
    assert result["data"]["total"] == 36.0
    [error] = result["errors"]
    assert error["code"] == "step.business_error"
    assert error["call"] == "products#1"
    assert error["adapter_code"] == "http.404"
    # Which call failed and how; not the downstream's body nor its address.
    assert error["message"] == "products.get_product failed: GET answered 404 Not Found"


async def test_unknown_order_fails_with_the_downstream_status(client: OrchestratorClient) -> None:
    result = await client.run("order-details", {"order_id": "o-404"}, timeout_s=60)

    assert result["status"] == "failed"
    assert result["data"] is None
    [error] = result["errors"]
    assert (error["code"], error["step"], error["adapter_code"]) == (
        "step.business_error",
        "order",
        "http.404",
    )
    assert {step["step"]: step["status"] for step in result["steps"]}["user"] == "not_run"


async def test_for_each_calls_once_per_item_with_idempotency_keys(
    client: OrchestratorClient, demo_services: DemoHttpServices
) -> None:
    request_id = await client.send("order-details", {"order_id": "o-1"}, request_id="fan-out-1")
    await client.wait_for(request_id, timeout_s=60)

    calls = demo_services.servers["products"].calls
    keys = sorted(call.headers["idempotency-key"] for call in calls)
    assert keys == ["fan-out-1:products#0", "fan-out-1:products#1", "fan-out-1:products#2"]
    assert sorted(call.path for call in calls) == [
        "/products/p-1",
        "/products/p-2",
        "/products/p-3",
    ]
    assert demo_services.servers["users"].calls[0].headers["authorization"] == "Bearer demo-token"


async def test_step_command_names_the_saga_partition_for_its_reply(
    client: OrchestratorClient, settings: CoordinatorSettings, topic_prefix: str
) -> None:
    request_id = await client.send("order-details", {"order_id": "o-1"})
    await client.wait_for(request_id, timeout_s=60)
    [request] = [
        record
        for record in await read_topic(settings.bootstrap_servers, settings.request_topic, expect=1)
        if record.key == request_id.encode()
    ]
    [command] = await read_topic(
        settings.bootstrap_servers, f"{topic_prefix}.inventory.commands", expect=1
    )

    headers = cloudevents.headers_to_dict(command.headers)
    assert cloudevents.missing_headers(headers) == []
    assert headers[cloudevents.TYPE] == cloudevents.TYPE_STEP_COMMAND
    assert headers[cloudevents.REPLY_TOPIC] == settings.reply_topic
    assert headers[cloudevents.REPLY_PARTITION] == str(request.partition)
    assert headers[cloudevents.CORRELATION_ID] == f"{request_id}:stock:1"
    assert command.key == request_id.encode()
    payload = StepCommand.model_validate_json(command.value)
    assert payload.input == {"product_ids": ["p-1", "p-2", "p-3"]}
    assert payload.idempotency_key == f"{request_id}:stock"


async def test_independent_steps_run_concurrently(settings: CoordinatorSettings) -> None:
    # Three steps that each wait for the other two at a barrier: run one at a
    # time, the barrier breaks and every call answers 500.
    barrier = threading.Barrier(3, timeout=10)

    def route(call: HttpCall) -> RouteResult:
        barrier.wait()
        return HTTPStatus.OK, {"name": call.segments[-1]}

    with JsonHttpServer(route) as server:
        catalog = catalog_from_data(
            {
                "services": {
                    "names": {
                        "kind": "http",
                        "allow": {"loopback": True},
                        "base_url": server.url,
                        "operations": {"get": {"path": "/names/{id}"}},
                    }
                }
            },
            source="test catalog",
        )
        builder = FlowBuilder("three-at-once", timeout_ms=20_000)
        for name in ("a", "b", "c"):
            builder.step(name, service="names", operation="get", input={"id": f"'{name}'"})
        flow = compile_flow(
            builder.result({"names": "[a.name, b.name, c.name]"}).build(), catalog=catalog
        )
        registry = FlowRegistry(flows={flow.name: flow}, catalog=catalog)
        async with (
            SagaCoordinator(registry=registry, settings=settings),
            OrchestratorClient(settings) as client,
        ):
            result = await client.run("three-at-once", {}, timeout_s=60)

    assert result["status"] == "completed", result["errors"]
    assert result["data"] == {"names": ["a", "b", "c"]}


async def test_sdk_adapter_loaded_in_process_gives_the_same_result(
    settings: CoordinatorSettings, demo_services: DemoHttpServices, tmp_path: Any
) -> None:
    # The same decorated inventory functions, loaded in-process instead of over Kafka.
    import shutil

    import yaml

    from orchestrator.flow_files import load_flows
    from tests.conftest import DEMO_FLOWS

    shutil.copy(DEMO_FLOWS / "order-details.yaml", tmp_path / "order-details.yaml")
    catalog = yaml.safe_load((DEMO_FLOWS / "services.yaml").read_text())
    catalog["services"]["inventory"] = {
        "kind": "python",
        "adapter": "handlers.demo.inventory:inventory",
    }
    (tmp_path / "services.yaml").write_text(yaml.safe_dump(catalog))
    registry = load_flows(tmp_path)

    async with (
        SagaCoordinator(registry=registry, settings=settings),
        OrchestratorClient(settings) as client,
    ):
        result = await client.run("order-details", {"order_id": "o-1"}, timeout_s=60)

    assert result["status"] == "completed"
    assert [line["product_id"] for line in result["data"]["lines"]] == ["p-1", "p-2"]
    assert result["data"]["total"] == 61.0
