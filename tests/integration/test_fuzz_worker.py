"""Fuzzing the SDK worker over the real broker: 10,000 hostile step commands
(random bytes, wrong and missing fields and headers, wrong types, huge strings,
10,000-level nesting, invalid UTF-8, a foreign or missing reply partition), drawn
by hypothesis, with good commands between them. The worker never stops; each
hostile command is dead-lettered with a reason or answered with an error reply
(never both, never twice); each good command gets exactly one ``ok`` reply; the
worker's committed offsets reach the end of its command topic."""

from __future__ import annotations

import asyncio
import collections
import uuid

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from handlers.demo.inventory import inventory
from handlers.sdk import Service
from handlers.worker import build_worker
from orchestrator.settings import CoordinatorSettings
from tests.integration.durability_io import WAIT_S, create_topics
from tests.integration.fuzz_records import (
    Record,
    command,
    command_headers,
    draw_many,
    hostile_commands,
)
from tests.integration.kafka_io import committed_offsets, end_offsets, read_topic

pytestmark = pytest.mark.kafka

DRAWN = 2_000
COPIES = 5
"""Each drawn command is published this often (a copy at another offset is
another command to handle; drawing is the slow part)."""
GOOD_EVERY = 100


async def test_hostile_commands_are_dead_lettered_or_answered_and_good_ones_succeed(
    settings: CoordinatorSettings, topic_prefix: str
) -> None:
    await create_topics(settings)
    command_topic = f"{topic_prefix}.inventory.commands"
    group = f"{topic_prefix}.inventory"
    hostile = draw_many(
        hostile_commands(settings.reply_topic, settings.result_topic), count=DRAWN, batch=10
    )
    hostile *= COPIES
    service = Service.with_command_topic(inventory, command_topic)
    broker, _ = build_worker(
        service,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=group,
        dead_letter_topic=settings.dead_letter_topic,
        reply_topics=[settings.reply_topic],
    )
    await broker.start()
    try:
        good = await _publish_interleaved(settings, command_topic, hostile)
        ends = await end_offsets(settings.bootstrap_servers, command_topic)
        committed = await _wait_until_committed(settings, group, command_topic, ends)
    finally:
        await broker.stop()

    dead = await read_topic(
        settings.bootstrap_servers,
        settings.dead_letter_topic,
        expect=1,
        timeout_s=WAIT_S,
        settle_s=2.0,
    )
    replies = await read_topic(
        settings.bootstrap_servers, settings.reply_topic, expect=len(good), settle_s=2.0
    )
    results = await end_offsets(settings.bootstrap_servers, settings.result_topic)

    assert committed == ends, "the worker's lag returns to zero"
    refused = [dict(record.headers) for record in dead]
    assert all(h["dlq_topic"] == command_topic.encode() for h in refused)
    assert all(h["dlq_code"] and h["dlq_reason"] for h in refused), "each with a code and reason"
    origins = {(h["dlq_partition"], h["dlq_offset"]) for h in refused}
    assert len(origins) == len(refused), "a command is dead-lettered once"

    answers = [orjson.loads(record.value) for record in replies]
    per_good = collections.Counter(
        answer["correlation_id"] for answer in answers if answer["correlation_id"] in good
    )
    assert per_good == collections.Counter(dict.fromkeys(good, 1)), "one reply per good command"
    assert all(answer["status"] == "ok" for answer in answers if answer["correlation_id"] in good)
    answered_hostile = len(answers) - len(good)
    assert len(refused) + answered_hostile == len(hostile), (
        "every hostile command is dead-lettered or answered, once"
    )
    assert sum(results.values()) == 0, "nothing is written to a topic a command names"


async def _publish_interleaved(
    settings: CoordinatorSettings, command_topic: str, hostile: list[Record]
) -> set[str]:
    """Publish with one producer, a good command every ``GOOD_EVERY``; returns
    the good commands' correlation ids."""
    run = uuid.uuid4().hex[:8]
    good: set[str] = set()
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        acks="all",
        linger_ms=20,
        max_request_size=4_000_000,
    )
    await producer.start()
    try:
        deliveries = []
        for n, (key, value, headers) in enumerate(hostile):
            if n % GOOD_EVERY == 0:
                request_id = f"good-{run}-{n}"
                body = command(request_id, "stock_levels", {"product_ids": ["p-1"]})
                good.add(body["correlation_id"])
                deliveries.append(
                    await producer.send(
                        command_topic,
                        value=orjson.dumps(body),
                        key=request_id.encode(),
                        headers=command_headers(settings.reply_topic),
                    )
                )
            deliveries.append(
                await producer.send(command_topic, value=value or b"", key=key, headers=headers)
            )
        await producer.flush()
        await asyncio.gather(*deliveries)
    finally:
        await producer.stop()
    return good


async def _wait_until_committed(
    settings: CoordinatorSettings, group: str, topic: str, ends: dict[int, int]
) -> dict[int, int]:
    committed: dict[int, int] = {}
    for _ in range(int(WAIT_S * 10)):
        found = await committed_offsets(settings.bootstrap_servers, group, topic)
        committed = {partition: offset or 0 for partition, offset in found.items()}
        if committed == ends:
            break
        await asyncio.sleep(0.1)
    return committed
