"""Overload over the real broker: a backlog waiting in Kafka before the coordinator
starts, and a burst of malformed records; everything answered, nothing lost,
every offset committed."""

from __future__ import annotations

import collections
import random
import time

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from handlers.demo.http_server import RouteResult
from orchestrator.flow_files import FlowRegistry
from orchestrator.runtime.coordinator import SagaCoordinator
from orchestrator.settings import CoordinatorSettings
from tests.integration.durability_io import (
    create_topics,
    publish_requests,
    started,
    wait_until_committed,
)
from tests.integration.kafka_io import end_offsets, read_topic
from tests.integration.saga_flows import (
    Hit,
    RecordingServer,
    answer_ok,
    http_service,
    http_step,
    saga_registry,
    shop_registry,
)

pytestmark = pytest.mark.kafka

BACKLOG = 400
BURST = 15_000


async def test_a_backlog_completes_without_timeouts(settings: CoordinatorSettings) -> None:
    def jittery(hit: Hit) -> RouteResult:
        time.sleep(random.uniform(0.02, 0.2))
        return answer_ok(hit)

    no_retry = {"attempts": 1}
    ids = [f"backlog-{n}" for n in range(BACKLOG)]
    await create_topics(settings)
    # The whole backlog is in Kafka before any coordinator runs.
    await publish_requests(settings, [(request_id, {"id": request_id}) for request_id in ids])
    with RecordingServer({"a": jittery, "b": jittery}) as server:
        registry = shop_registry(
            server,
            {
                "a": http_step("a", timeout_ms=2_000, retry=no_retry),
                "b": http_step("b", reads="a.id", timeout_ms=2_000, retry=no_retry),
            },
            result={"b": "b.id"},
        )
        async with SagaCoordinator(registry=registry, settings=settings) as coordinator:
            await started(coordinator)
            records = await read_topic(
                settings.bootstrap_servers,
                settings.result_topic,
                expect=BACKLOG,
                timeout_s=90,
                settle_s=1.0,
            )
            await wait_until_committed(settings)

    results = [orjson.loads(record.value) for record in records]
    assert sorted(result["request_id"] for result in results) == sorted(ids)
    timed_out = [
        result["request_id"]
        for result in results
        if any(error["code"] == "step.timeout" for error in result["errors"])
    ]
    assert timed_out == [], f"{len(timed_out)} requests timed out waiting in the coordinator"
    assert collections.Counter(result["status"] for result in results) == {"completed": BACKLOG}
    assert len(server.hits) == 2 * BACKLOG
    assert server.max_in_flight <= settings.calls_limit, "admission is bounded by calls in flight"


async def test_a_burst_of_malformed_records_is_dead_lettered_and_committed(
    settings: CoordinatorSettings,
) -> None:
    await create_topics(settings)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=20
    )
    await producer.start()
    try:
        deliveries = [
            await producer.send(settings.request_topic, value=b"not json", key=f"junk-{n}".encode())
            for n in range(BURST)
        ]
        await producer.flush()
        placed = collections.Counter([(await delivery).partition for delivery in deliveries])
    finally:
        await producer.stop()
    assert len(placed) == 2, "the burst spans both partitions (test setup)"

    async with SagaCoordinator(registry=_unused_registry(), settings=settings) as coordinator:
        await started(coordinator)
        dead = await read_topic(
            settings.bootstrap_servers,
            settings.dead_letter_topic,
            expect=BURST,
            timeout_s=90,
            settle_s=1.0,
        )
        committed = await wait_until_committed(settings)
        results = await end_offsets(settings.bootstrap_servers, settings.result_topic)

    origins = {
        (dict(record.headers)["dlq_partition"], dict(record.headers)["dlq_offset"])
        for record in dead
    }
    assert len(dead) == BURST
    assert len(origins) == BURST, "each malformed record is dead-lettered once"
    assert {dict(record.headers)["dlq_code"] for record in dead} == {b"request.missing_headers"}
    assert committed == dict(placed)
    # Each record is keyed, so its key names a request id that gets one failed result.
    assert sum(results.values()) == BURST


def _unused_registry() -> FlowRegistry:
    """A flow nothing in the burst reaches (no record gets past its headers)."""
    return saga_registry({"shop": http_service("http://127.0.0.1:9", ["a"])}, {"a": http_step("a")})
