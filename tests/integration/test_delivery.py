"""Delivery over the real broker: duplicates, restarts and committed offsets."""

from __future__ import annotations

import asyncio
import threading
from http import HTTPStatus

import orjson
import pytest

from contracts import cloudevents
from handlers.demo.http_server import HttpCall, JsonHttpServer, RouteResult
from orchestrator.client import OrchestratorClient
from orchestrator.runtime.coordinator import SagaCoordinator
from orchestrator.settings import CoordinatorSettings
from tests.integration.flows import single_call_registry
from tests.integration.kafka_io import committed_offsets, end_offsets, publish_raw, read_topic

pytestmark = pytest.mark.kafka


def echo(call: HttpCall) -> RouteResult:
    return HTTPStatus.OK, {"id": call.segments[-1]}


async def publish_request(settings: CoordinatorSettings, request_id: str, item: str) -> None:
    await publish_raw(
        settings.bootstrap_servers,
        settings.request_topic,
        value=orjson.dumps({"request_id": request_id, "flow": "one-call", "input": {"id": item}}),
        key=request_id.encode(),
        headers=cloudevents.build_headers(
            event_id=request_id, event_type=cloudevents.TYPE_REQUEST, source="urn:test", time_ms=0
        ),
    )


async def test_duplicate_request_gives_one_result(settings: CoordinatorSettings) -> None:
    with JsonHttpServer(echo) as server:
        registry = single_call_registry(base_url=server.url)
        async with (
            SagaCoordinator(registry=registry, settings=settings),
            OrchestratorClient(settings) as client,
        ):
            for _ in range(3):
                await publish_request(settings, "dup-1", "a")
            result = await client.wait_for("dup-1", timeout_s=60)
            records = await read_topic(
                settings.bootstrap_servers, settings.result_topic, expect=1, settle_s=2
            )

    assert result["data"] == {"answer": {"id": "a"}}
    assert len(records) == 1
    assert len(server.calls) == 1


async def test_request_in_flight_at_shutdown_is_finished_by_the_next_instance(
    settings: CoordinatorSettings,
) -> None:
    first_call = threading.Event()
    release = threading.Event()

    def slow_until_released(call: HttpCall) -> RouteResult:
        first_call.set()
        release.wait(timeout=30)
        return HTTPStatus.OK, {"id": call.segments[-1]}

    with JsonHttpServer(slow_until_released) as server:
        registry = single_call_registry(base_url=server.url, timeout_ms=30_000)
        async with SagaCoordinator(registry=registry, settings=settings):
            async with OrchestratorClient(settings) as client:
                await client.send("one-call", {"id": "survivor"}, request_id="restart-1")
            assert await asyncio.to_thread(first_call.wait, 30)
        # The first instance stopped mid-saga: no result, but the saga's start is
        # in the changelog, so the request's offset could be committed.
        committed = await committed_offsets(
            settings.bootstrap_servers, settings.group_id, settings.request_topic
        )
        assert sorted(offset or 0 for offset in committed.values()) == [0, 1]
        changelog = await read_topic(settings.bootstrap_servers, settings.changelog_topic, expect=2)
        assert b"s:restart-1" in {record.key for record in changelog}
        release.set()
        async with (
            SagaCoordinator(registry=registry, settings=settings),
            OrchestratorClient(settings) as client,
        ):
            # The client reads results from the end at start; the result may
            # already be there, so read the topic whole.
            records = await read_topic(
                settings.bootstrap_servers, settings.result_topic, expect=1, settle_s=1
            )
        result = orjson.loads(records[0].value)

    assert result["status"] == "completed"
    assert result["data"] == {"answer": {"id": "survivor"}}
    assert len(records) == 1
    # Both instances called with the same idempotency key, so the downstream can
    # perform the call once.
    assert {call.headers["idempotency-key"] for call in server.calls} == {"restart-1:call"}
    assert len(server.calls) == 2


async def test_offsets_are_committed_after_results(settings: CoordinatorSettings) -> None:
    with JsonHttpServer(echo) as server:
        registry = single_call_registry(base_url=server.url)
        async with (
            SagaCoordinator(registry=registry, settings=settings),
            OrchestratorClient(settings) as client,
        ):
            request_ids = [await client.send("one-call", {"id": str(n)}) for n in range(20)]
            results = [
                await client.wait_for(request_id, timeout_s=60) for request_id in request_ids
            ]
            ends = await end_offsets(settings.bootstrap_servers, settings.request_topic)
            committed: dict[int, int | None] = {}
            for _ in range(100):
                committed = await committed_offsets(
                    settings.bootstrap_servers, settings.group_id, settings.request_topic
                )
                if committed == ends:
                    break
                await asyncio.sleep(0.1)

    assert [result["status"] for result in results] == ["completed"] * 20
    assert sum(ends.values()) == 20
    assert committed == ends


async def test_two_instances_share_the_partitions(settings: CoordinatorSettings) -> None:
    with JsonHttpServer(echo) as server:
        registry = single_call_registry(base_url=server.url)
        async with (
            SagaCoordinator(registry=registry, settings=settings) as first,
            SagaCoordinator(registry=registry, settings=settings) as second,
            OrchestratorClient(settings) as client,
        ):
            await asyncio.wait_for(
                asyncio.gather(first.assigned.wait(), second.assigned.wait()), 60
            )
            request_ids = [await client.send("one-call", {"id": str(n)}) for n in range(30)]
            results = [
                await client.wait_for(request_id, timeout_s=60) for request_id in request_ids
            ]

    assert [result["status"] for result in results] == ["completed"] * 30
    assert client.duplicates == []


async def test_bad_duplicate_of_a_running_request_adds_no_second_result(
    settings: CoordinatorSettings,
) -> None:
    release = threading.Event()

    def slow(call: HttpCall) -> RouteResult:
        release.wait(timeout=30)
        return HTTPStatus.OK, {"id": call.segments[-1]}

    with JsonHttpServer(slow) as server:
        registry = single_call_registry(base_url=server.url, timeout_ms=30_000)
        async with (
            SagaCoordinator(registry=registry, settings=settings),
            OrchestratorClient(settings) as client,
        ):
            await publish_request(settings, "twin-1", "a")
            # Same key, no CloudEvents headers: rejected, but the saga runs on.
            await publish_raw(
                settings.bootstrap_servers, settings.request_topic, value=b"junk", key=b"twin-1"
            )
            [dead] = await read_topic(
                settings.bootstrap_servers, settings.dead_letter_topic, expect=1
            )
            release.set()
            result = await client.wait_for("twin-1", timeout_s=60)
            results = await read_topic(
                settings.bootstrap_servers, settings.result_topic, expect=1, settle_s=1.5
            )

    assert dict(dead.headers)["dlq_code"] == b"request.missing_headers"
    assert result["status"] == "completed"
    assert len(results) == 1


async def test_a_record_the_coordinator_fails_on_costs_only_that_record(
    settings: CoordinatorSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.runtime import coordinator as coordinator_module

    real_admit = coordinator_module.admit

    def admit_with_a_bug(**arguments: object) -> object:
        if arguments["key"] == b"poison":
            raise ZeroDivisionError("injected fault")
        return real_admit(**arguments)  # type: ignore[arg-type]

    monkeypatch.setattr(coordinator_module, "admit", admit_with_a_bug)
    with JsonHttpServer(echo) as server:
        registry = single_call_registry(base_url=server.url)
        async with (
            SagaCoordinator(registry=registry, settings=settings),
            OrchestratorClient(settings) as client,
        ):
            await publish_request(settings, "poison", "a")
            await publish_request(settings, "healthy", "b")
            poisoned = await client.wait_for("poison", timeout_s=60)
            healthy = await client.wait_for("healthy", timeout_s=60)
            [dead] = await read_topic(
                settings.bootstrap_servers, settings.dead_letter_topic, expect=1
            )

    assert [error["code"] for error in poisoned["errors"]] == ["orchestrator.internal_error"]
    assert "injected fault" in poisoned["errors"][0]["message"]
    assert dict(dead.headers)["dlq_code"] == b"orchestrator.internal_error"
    assert healthy["status"] == "completed"


async def test_past_max_in_flight_requests_wait_in_kafka(settings: CoordinatorSettings) -> None:
    gate = threading.Event()

    def gated(call: HttpCall) -> RouteResult:
        gate.wait(timeout=30)
        return HTTPStatus.OK, {"id": call.segments[-1]}

    # One record per poll, so the limit is checked between every two requests.
    limited = settings.replace(max_in_flight=2, max_batch=1)
    with JsonHttpServer(gated) as server:
        registry = single_call_registry(base_url=server.url, timeout_ms=30_000)
        async with (
            SagaCoordinator(registry=registry, settings=limited) as coordinator,
            OrchestratorClient(limited) as client,
        ):
            request_ids = [await client.send("one-call", {"id": str(n)}) for n in range(6)]
            for _ in range(300):
                if len(server.calls) >= 2:
                    break
                await asyncio.sleep(0.05)
            # Generous window in which, unpaused, the other 4 would have been fetched.
            await asyncio.sleep(1.5)
            held = (coordinator.in_flight, len(server.calls))
            gate.set()
            results = [await client.wait_for(rid, timeout_s=60) for rid in request_ids]

    assert held == (2, 2), "only max_in_flight sagas may run; the rest wait in Kafka"
    assert [result["status"] for result in results] == ["completed"] * 6
    assert len(server.calls) == 6
