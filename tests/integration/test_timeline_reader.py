"""The timeline's reader over the real broker: it waits for topics that do not exist
yet, reads back only its window, shows a saga running from its changelog start
record, and replaces it with the saga's result once that is published; a finished
marker or tombstone ends a running saga, and partitions added later are followed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions

from orchestrator.runtime.topics import check_topics
from orchestrator.settings import CoordinatorSettings
from orchestrator.timeline import TimelineReader, TimelineStore
from tests.integration.kafka_io import publish_raw

pytestmark = pytest.mark.kafka

WAIT_S = 20.0


async def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def result(request_id: str, *, started_ms: int) -> bytes:
    return orjson.dumps(
        {
            "schema_version": 3,
            "request_id": request_id,
            "flow": "orders",
            "status": "completed",
            "complete": True,
            "steps": [],
            "errors": [],
            "started_at_ms": started_ms,
            "finished_at_ms": started_ms + 9,
        }
    )


async def test_the_reader_follows_topics_created_after_it_started(
    settings: CoordinatorSettings,
) -> None:
    bootstrap = settings.bootstrap_servers
    settings = settings.replace(timeline_window_ms=60_000)
    early = TimelineStore(max_sagas=10)
    early_reader = TimelineReader(settings, early)
    await early_reader.start()
    try:
        await asyncio.sleep(0.5)  # it has looked once, and found no topic
        await check_topics(
            bootstrap,
            {settings.result_topic: 2, settings.changelog_topic: 2},
            replication_factor=1,
            compacted=(settings.changelog_topic,),
        )
        now = int(time.time() * 1000)
        await publish_old_result(settings, now_ms=now)
        await publish_running_saga(settings, now_ms=now)
        await eventually(lambda: early.detail("slow") is not None, "the running saga")
    finally:
        await early_reader.stop()

    # Started once the records exist: it reads back its window only.
    store = TimelineStore(max_sagas=10)
    reader = TimelineReader(settings, store)
    await reader.start()
    try:
        await eventually(lambda: (store.detail("slow") or {}).get("event_count") == 1, "its event")
        assert [(s["request_id"], s["status"]) for s in store.sagas()] == [("slow", "running")]

        await publish_raw(
            bootstrap, settings.result_topic, key=b"slow", value=result("slow", started_ms=now)
        )
        await eventually(lambda: store.sagas(status="completed") != [], "the result")
        assert [(s["request_id"], s["duration_ms"]) for s in store.sagas()] == [("slow", 9)]
    finally:
        await reader.stop()


async def publish_old_result(settings: CoordinatorSettings, *, now_ms: int) -> None:
    """A result written (by its record time) two minutes ago: before the window."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            settings.result_topic,
            key=b"old",
            value=result("old", started_ms=now_ms - 120_000),
            timestamp_ms=now_ms - 120_000,
        )
    finally:
        await producer.stop()


async def publish_running_saga(settings: CoordinatorSettings, *, now_ms: int) -> None:
    """A saga's changelog start record and one recorded event, as a coordinator writes."""
    start = {"flow": "orders", "fingerprint": "f", "version": 1, "input": {}}
    event = {"k": "reply", "call": "a", "attempt": 1, "at": now_ms + 5, "status": "ok"}
    for key, value in ((b"s:slow", {**start, "started_ms": now_ms}), (b"e:slow/1", event)):
        await publish_raw(
            settings.bootstrap_servers,
            settings.changelog_topic,
            key=key,
            value=orjson.dumps(value),
            partition=0,
        )


async def test_finished_markers_and_tombstones_end_running_sagas(
    settings: CoordinatorSettings,
) -> None:
    await check_topics(
        settings.bootstrap_servers,
        {settings.result_topic: 1, settings.changelog_topic: 1},
        replication_factor=1,
        compacted=(settings.changelog_topic,),
    )
    now = int(time.time() * 1000)
    start = {"flow": "orders", "fingerprint": "f", "version": 1, "input": {}}
    records: list[tuple[bytes, bytes | None]] = [
        (b"s:marked", orjson.dumps({**start, "started_ms": now})),
        (b"s:tombstoned", orjson.dumps({**start, "started_ms": now + 1})),
        (b"s:marked", orjson.dumps({"done": now + 5})),
        (b"s:tombstoned", orjson.dumps({"done": now + 6})),
        (b"s:tombstoned", None),
        (b"s:live", orjson.dumps({**start, "started_ms": now + 2})),
    ]
    for key, value in records:
        await publish_raw(
            settings.bootstrap_servers, settings.changelog_topic, key=key, value=value
        )

    store = TimelineStore(max_sagas=10)
    reader = TimelineReader(settings.replace(timeline_window_ms=60_000), store)
    await reader.start()
    try:
        # "live" is the last record: once it shows, the markers before it were read.
        await eventually(lambda: store.detail("live") is not None, "the live saga")
        assert [(s["request_id"], s["status"]) for s in store.sagas()] == [("live", "running")]
    finally:
        await reader.stop()


async def test_partitions_added_after_the_start_are_followed(
    settings: CoordinatorSettings,
) -> None:
    bootstrap = settings.bootstrap_servers
    await check_topics(
        bootstrap,
        {settings.result_topic: 1, settings.changelog_topic: 1},
        replication_factor=1,
        compacted=(settings.changelog_topic,),
    )
    now = int(time.time() * 1000)
    store = TimelineStore(max_sagas=10)
    reader = TimelineReader(settings.replace(timeline_window_ms=60_000), store)
    reader.recheck_s = 0.2
    await reader.start()
    try:
        await publish_raw(
            bootstrap, settings.result_topic, key=b"first", value=result("first", started_ms=now)
        )
        await eventually(lambda: store.detail("first") is not None, "the first result")
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_partitions({settings.result_topic: NewPartitions(total_count=2)})
        finally:
            await admin.close()
        await publish_raw(
            bootstrap,
            settings.result_topic,
            key=b"second",
            value=result("second", started_ms=now + 1),
            partition=1,
        )
        await eventually(lambda: store.detail("second") is not None, "the added partition")
    finally:
        await reader.stop()
