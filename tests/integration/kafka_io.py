"""Raw Kafka helpers for integration tests: publish odd records, read topics whole."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition


async def publish_raw(
    bootstrap: str,
    topic: str,
    *,
    value: bytes | None,
    key: bytes | None = None,
    headers: list[tuple[str, bytes]] | None = None,
    partition: int | None = None,
) -> None:
    """Publish one record exactly as given."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            topic, value=value, key=key, headers=headers or [], partition=partition
        )
    finally:
        await producer.stop()


async def partitions_of(
    consumer: AIOKafkaConsumer, topic: str, *, timeout_s: float = 30.0
) -> list[TopicPartition]:
    """The partitions of ``topic``, waiting for metadata to show them."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        numbers = consumer.partitions_for_topic(topic)
        if numbers:
            return [TopicPartition(topic, number) for number in sorted(numbers)]
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)
    raise AssertionError(f"topic {topic} does not exist")


async def read_topic(
    bootstrap: str, topic: str, *, expect: int, timeout_s: float = 30.0, settle_s: float = 0.0
) -> list[ConsumerRecord[Any, Any]]:
    """Read a topic from the start until ``expect`` records arrived (then ``settle_s`` more)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    records: list[ConsumerRecord[Any, Any]] = []
    try:
        deadline = time.monotonic() + timeout_s
        assigned = await partitions_of(consumer, topic)
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        settle_until: float | None = None
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for batch_records in batch.values():
                records.extend(batch_records)
            if len(records) >= expect:
                if settle_until is None:
                    settle_until = time.monotonic() + settle_s
                if time.monotonic() >= settle_until:
                    break
        return records
    finally:
        await consumer.stop()


async def committed_offsets(bootstrap: str, group_id: str, topic: str) -> dict[int, int | None]:
    """The group's committed offset of each partition of ``topic``."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False
    )
    await consumer.start()
    try:
        return {
            partition.partition: await consumer.committed(partition)
            for partition in await partitions_of(consumer, topic)
        }
    finally:
        await consumer.stop()


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The end offset of each partition of ``topic``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(await partitions_of(consumer, topic))
        return {partition.partition: offset for partition, offset in ends.items()}
    finally:
        await consumer.stop()
