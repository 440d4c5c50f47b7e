"""Failures inside the coordinator or an adapter cost one request, never a loop,
a partition or an answer (regressions from review findings)."""

from __future__ import annotations

import asyncio
from http import HTTPStatus

import pytest
from pydantic import BaseModel

from handlers.demo.http_server import HttpCall, JsonHttpServer, RouteResult
from handlers.sdk import Service
from handlers.worker import build_worker
from orchestrator.builder import FlowBuilder
from orchestrator.catalog import catalog_from_data
from orchestrator.client import OrchestratorClient
from orchestrator.errors import SetupError
from orchestrator.flow import compile_flow
from orchestrator.flow_files import FlowRegistry
from orchestrator.runtime.coordinator import SagaCoordinator
from orchestrator.runtime.topics import check_topics
from orchestrator.settings import CoordinatorSettings
from tests.integration.kafka_io import committed_offsets, end_offsets

pytestmark = pytest.mark.kafka

HUGE = 2**62  # times 4 exceeds 64 bits: valid in the saga, not encodable as JSON by orjson


def echo(call: HttpCall) -> RouteResult:
    return HTTPStatus.OK, {"id": call.segments[-1]}


def registry_of(builder: FlowBuilder, services: dict[str, object]) -> FlowRegistry:
    catalog = catalog_from_data({"services": services}, source="test catalog")
    flow = compile_flow(builder.build(), catalog=catalog)
    return FlowRegistry(flows={flow.name: flow}, catalog=catalog)


async def test_unencodable_result_becomes_a_failed_result_and_the_partition_moves_on(
    settings: CoordinatorSettings,
) -> None:
    with JsonHttpServer(echo) as server:
        builder = FlowBuilder("times-four")
        builder.step("call", service="echo", operation="get", input={"id": "input.id"})
        builder.result({"id": "call.id", "big": "multiply(input.n, `4`)"})
        registry = registry_of(
            builder,
            {
                "echo": {
                    "kind": "http",
                    "allow": {"loopback": True},
                    "base_url": server.url,
                    "operations": {"get": {"path": "/i/{id}"}},
                }
            },
        )
        async with (
            SagaCoordinator(registry=registry, settings=settings),
            OrchestratorClient(settings) as client,
        ):
            poisoned = await client.run("times-four", {"id": "a", "n": HUGE}, timeout_s=60)
            fine = await client.run("times-four", {"id": "b", "n": 2}, timeout_s=60)
            ends = await end_offsets(settings.bootstrap_servers, settings.request_topic)
            committed: dict[int, int | None] = {}
            for _ in range(100):
                committed = await committed_offsets(
                    settings.bootstrap_servers, settings.group_id, settings.request_topic
                )
                if {number: offset or 0 for number, offset in committed.items()} == ends:
                    break
                await asyncio.sleep(0.1)

    assert poisoned["status"] == "failed"
    # The core sizes the result before it is published: an unencodable one is the
    # result mapping's failure, not an internal error.
    assert [error["code"] for error in poisoned["errors"]] == ["result.mapping_error"]
    assert fine["data"] == {"id": "b", "big": 8}
    assert {number: offset or 0 for number, offset in committed.items()} == ends, (
        "offsets must move past the request whose result failed"
    )


async def test_deadlines_keep_firing_after_a_saga_fails_inside_the_timer(
    settings: CoordinatorSettings, topic_prefix: str
) -> None:
    # The timeout ends each saga, and its result cannot be encoded: the failure
    # happens while the deadline loop finishes the saga (the core sizes the result
    # and fails it as the result mapping's), and the loop must go on for the next.
    builder = FlowBuilder("silent", timeout_ms=300)
    builder.step("call", service="silent", operation="op", input={"id": "input.id"}, optional=True)
    builder.result({"big": "multiply(input.n, `4`)"})
    registry = registry_of(
        builder, {"silent": {"kind": "kafka", "command_topic": f"{topic_prefix}.silent"}}
    )
    async with (
        SagaCoordinator(registry=registry, settings=settings),
        OrchestratorClient(settings) as client,
    ):
        first = await client.run("silent", {"id": "a", "n": HUGE}, timeout_s=60)
        second = await client.run("silent", {"id": "b", "n": 1}, timeout_s=60)

    assert first["status"] == "failed"
    assert [error["code"] for error in first["errors"]] == ["step.timeout", "result.mapping_error"]
    assert second["status"] == "completed"
    assert second["data"] == {"big": 4}
    assert [error["code"] for error in second["errors"]] == ["step.timeout"]


class Query(BaseModel):
    id: str


async def test_adapter_reply_too_large_to_publish_reports_a_technical_error(
    settings: CoordinatorSettings, topic_prefix: str
) -> None:
    bloated = Service("bloated", command_topic=f"{topic_prefix}.bloated")

    @bloated.operation("get")
    async def get(query: Query) -> str:
        return "x" * 2_000_000  # over the producer's 1 MiB request limit

    builder = FlowBuilder("too-big")
    builder.step("call", service="bloated", operation="get", input={"id": "input.id"})
    registry = registry_of(
        builder.result("call"),
        {"bloated": {"kind": "kafka", "command_topic": f"{topic_prefix}.bloated"}},
    )
    broker, _ = build_worker(
        bloated,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=f"{topic_prefix}.bloated",
        dead_letter_topic=settings.dead_letter_topic,
        reply_topics=[settings.reply_topic],
    )
    async with (
        SagaCoordinator(registry=registry, settings=settings),
        OrchestratorClient(settings) as client,
    ):
        await broker.start()
        try:
            result = await client.run("too-big", {"id": "a"}, timeout_s=60)
        finally:
            await broker.stop()

    [error] = result["errors"]
    assert (error["code"], error["adapter_code"]) == ("step.technical_error", "reply.undeliverable")


async def test_reply_and_request_partitions_are_checked_without_creating_topics(
    settings: CoordinatorSettings,
) -> None:
    await check_topics(
        settings.bootstrap_servers,
        {
            settings.request_topic: 2,
            settings.reply_topic: 1,
            settings.result_topic: 2,
            settings.dead_letter_topic: 1,
            settings.changelog_topic: 2,
        },
        compacted=(settings.changelog_topic,),
    )
    no_create = settings.replace(create_topics=False)
    registry = registry_of(
        _trivial_builder(),
        {
            "echo": {
                "kind": "http",
                "allow": {"loopback": True},
                "base_url": "http://127.0.0.1:9",
                "operations": {"get": {"path": "/i"}},
            }
        },
    )
    with pytest.raises(SetupError, match="must match"):
        await SagaCoordinator(registry=registry, settings=no_create).start()


async def test_a_changelog_topic_that_is_not_compacted_is_refused(
    settings: CoordinatorSettings,
) -> None:
    # Under cleanup.policy=delete the state of long sagas would be deleted by age.
    await check_topics(settings.bootstrap_servers, {settings.changelog_topic: 2})
    registry = registry_of(
        _trivial_builder(),
        {
            "echo": {
                "kind": "http",
                "allow": {"loopback": True},
                "base_url": "http://127.0.0.1:9",
                "operations": {"get": {"path": "/i"}},
            }
        },
    )
    with pytest.raises(SetupError, match=r"must be compacted.*cleanup\.policy is 'delete'"):
        await SagaCoordinator(registry=registry, settings=settings).start()


def _trivial_builder() -> FlowBuilder:
    builder = FlowBuilder("trivial")
    builder.step("call", service="echo", operation="get")
    return builder.result("call")
