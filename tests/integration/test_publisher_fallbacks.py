"""Records Kafka refuses for good take their fallback, over the real broker."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from orchestrator.runtime.publisher import Publisher
from orchestrator.runtime.records import (
    MAX_REASON_CHARS,
    OutgoingRecord,
    dead_letter_record,
    dead_letter_without_value,
)
from tests.integration.kafka_io import read_topic

pytestmark = pytest.mark.kafka


async def create_topic(bootstrap: str, name: str, *, max_message_bytes: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        response = await admin.create_topics(
            [NewTopic(name, 1, 1, topic_configs={"max.message.bytes": str(max_message_bytes)})]
        )
        assert all(code == 0 for _, code, *_ in response.topic_errors), response
    finally:
        await admin.close()


@pytest.fixture
async def publisher(kafka_bootstrap: str) -> AsyncIterator[Publisher]:
    """A publisher on a producer set up like the coordinator's."""
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True, linger_ms=2
    )
    await producer.start()
    try:
        yield Publisher(producer)
    finally:
        await producer.stop()


@pytest.mark.parametrize(
    ("value_bytes", "refused_by"),
    [(20_000, "the broker: over the topic's max.message.bytes"), (1_100_000, "the producer")],
)
async def test_a_record_too_large_takes_the_fallback(
    *,
    kafka_bootstrap: str,
    topic_prefix: str,
    publisher: Publisher,
    value_bytes: int,
    refused_by: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    topic = f"{topic_prefix}.results"
    await create_topic(kafka_bootstrap, topic, max_message_bytes=10_000)
    big = OutgoingRecord(topic=topic, key=b"r-1", value=b"x" * value_bytes, headers=[])
    small = OutgoingRecord(topic=topic, key=b"r-1", value=b'{"failed": true}', headers=[])

    await publisher.send_until_acknowledged(
        [big], fallback=lambda: [small], what=f"a result refused by {refused_by}"
    )

    records = await read_topic(kafka_bootstrap, topic, expect=1, settle_s=1)
    assert [(record.key, record.value) for record in records] == [(b"r-1", b'{"failed": true}')]
    assert "failed for good (MessageSizeTooLargeError" in caplog.text


async def test_a_dead_letter_too_large_for_its_topic_is_published_without_its_value(
    kafka_bootstrap: str, topic_prefix: str, publisher: Publisher
) -> None:
    topic = f"{topic_prefix}.dlq"
    await create_topic(kafka_bootstrap, topic, max_message_bytes=100_000)
    value = b'{"request_id": "r-1", "input": "' + b"y" * 600_000 + b'"}'
    full = dead_letter_record(
        topic=topic,
        key=b"r-1",
        value=value,
        headers=[("ce_id", b"r-1")],
        code="request.invalid",
        reason=f"input does not match the schema: {value.decode()}",
        origin_topic=f"{topic_prefix}.requests",
        origin_partition=0,
        origin_offset=7,
    )

    await publisher.send_until_acknowledged(
        [full], fallback=lambda: [dead_letter_without_value(full)], what="the dead letter"
    )

    [stored] = await read_topic(kafka_bootstrap, topic, expect=1, settle_s=1)
    headers = dict(stored.headers)
    assert (stored.key, stored.value) == (b"r-1", b"")
    assert headers["dlq_code"] == b"request.invalid"
    assert len(headers["dlq_reason"].decode()) == MAX_REASON_CHARS
    assert (headers["dlq_topic"], headers["dlq_offset"]) == (
        f"{topic_prefix}.requests".encode(),
        b"7",
    )
    assert headers["dlq_dropped"].startswith(
        f"the original value of {len(value)} bytes was too large to keep".encode()
    )
    assert "ce_id" not in headers
