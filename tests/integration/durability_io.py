"""Helpers for the durability and overload tests: publish requests and odd records
with one producer, wait for committed offsets, count results per request id."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Iterable
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from contracts import cloudevents
from orchestrator.runtime.coordinator import SagaCoordinator
from orchestrator.runtime.topics import check_topics
from orchestrator.settings import CoordinatorSettings
from tests.integration.kafka_io import committed_offsets, end_offsets, read_topic
from tests.integration.saga_flows import FLOW

WAIT_S = 60.0
"""Generous bound for anything that normally takes a second or two."""


def request_value(request_id: str, flow_input: dict[str, Any], *, flow: str = FLOW) -> bytes:
    return orjson.dumps(
        {"schema_version": 1, "request_id": request_id, "flow": flow, "input": flow_input}
    )


def request_headers(request_id: str) -> list[tuple[str, bytes]]:
    return cloudevents.build_headers(
        event_id=request_id,
        event_type=cloudevents.TYPE_REQUEST,
        source="urn:test",
        time_ms=time.time_ns() // 1_000_000,
    )


async def publish_requests(
    settings: CoordinatorSettings,
    requests: Iterable[tuple[str, dict[str, Any]]],
    *,
    partition: int | None = None,
) -> None:
    """Publish well-formed requests keyed by their id, with one producer."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    await producer.start()
    try:
        deliveries = [
            await producer.send(
                settings.request_topic,
                value=request_value(request_id, flow_input),
                key=request_id.encode(),
                headers=request_headers(request_id),
                partition=partition,
            )
            for request_id, flow_input in requests
        ]
        await asyncio.gather(*deliveries)
    finally:
        await producer.stop()


async def publish_record(
    settings: CoordinatorSettings,
    *,
    value: bytes,
    key: bytes | None,
    headers: list[tuple[str, bytes]],
    partition: int | None = None,
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            settings.request_topic, value=value, key=key, headers=headers, partition=partition
        )
    finally:
        await producer.stop()


async def wait_until_committed(settings: CoordinatorSettings) -> dict[int, int]:
    """Wait until the group's committed offsets on the request topic reach its end."""
    ends = await end_offsets(settings.bootstrap_servers, settings.request_topic)
    committed: dict[int, int] = {}
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = await committed_offsets(
            settings.bootstrap_servers, settings.group_id, settings.request_topic
        )
        # An empty partition has nothing to commit: None stands for offset 0.
        committed = {partition: offset or 0 for partition, offset in found.items()}
        if committed == ends:
            break
        await asyncio.sleep(0.1)
    assert committed == ends, "every request record must be finished and committed"
    return committed


async def results_by_id(
    settings: CoordinatorSettings, *, expect: int, settle_s: float = 1.5
) -> collections.Counter[str]:
    """Read the result topic whole; how many results each request id has."""
    records = await read_topic(
        settings.bootstrap_servers,
        settings.result_topic,
        expect=expect,
        timeout_s=WAIT_S,
        settle_s=settle_s,
    )
    return collections.Counter(orjson.loads(record.value)["request_id"] for record in records)


async def started(*coordinators: SagaCoordinator) -> None:
    await asyncio.wait_for(
        asyncio.gather(*(coordinator.assigned.wait() for coordinator in coordinators)), WAIT_S
    )


async def create_topics(settings: CoordinatorSettings) -> None:
    """Create the coordinator's topics as it would, before any coordinator runs."""
    names = (
        settings.request_topic,
        settings.reply_topic,
        settings.changelog_topic,
        settings.result_topic,
        settings.dead_letter_topic,
    )
    await check_topics(
        settings.bootstrap_servers,
        dict.fromkeys(names, settings.partitions),
        create=True,
        replication_factor=settings.replication_factor,
        same_partitions=(settings.request_topic, settings.reply_topic, settings.changelog_topic),
        at_least=(settings.request_topic, settings.result_topic),
        compacted=(settings.changelog_topic,),
    )
