"""The saga changelog over the real broker: what is written is what a restore reads."""

from __future__ import annotations

import orjson
from aiokafka import AIOKafkaProducer

from orchestrator.runtime import changelog
from orchestrator.runtime.changelog import ChangelogWriter, KafkaReader
from orchestrator.runtime.topics import check_topics
from orchestrator.settings import CoordinatorSettings


async def test_a_restore_reads_back_sagas_events_markers_and_large_values(
    settings: CoordinatorSettings,
) -> None:
    topic = settings.changelog_topic
    await check_topics(settings.bootstrap_servers, {topic: 2}, compacted=(topic,))
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, acks="all", enable_idempotence=True
    )
    await producer.start()
    writer = ChangelogWriter(producer, topic)
    import asyncio

    running = asyncio.create_task(writer.run())
    acked: list[str] = []
    big = {
        "k": "reply",
        "call": "a",
        "attempt": 1,
        "at": 5,
        "status": "ok",
        "output": "x" * 3_000_000,
    }
    try:
        writer.append(
            1, changelog.split(changelog.saga_key("r-1"), b'{"flow": "f", "started_ms": 1}')
        )
        writer.append(
            1,
            changelog.split(changelog.event_key("r-1", 1), orjson.dumps(big)),
            lambda: acked.append("big"),
        )
        writer.append(
            1, changelog.split(changelog.saga_key("r-2"), b'{"flow": "f", "started_ms": 2}')
        )
        writer.append(1, [(changelog.saga_key("r-2"), orjson.dumps({"done": 7}))])
        writer.append(
            0, changelog.split(changelog.saga_key("r-3"), b'{"flow": "f", "started_ms": 3}')
        )
        await writer.flush()
    finally:
        running.cancel()
        await producer.stop()
    assert acked == ["big"]
    reader = KafkaReader(settings.bootstrap_servers)
    await reader.start()
    try:
        restored = await reader.changelog(topic, [0, 1])
    finally:
        await reader.stop()
    assert set(restored[1].sagas) == {"r-1"}
    assert restored[1].markers == {"r-2": 7}
    assert set(restored[0].sagas) == {"r-3"}
    [event] = changelog.recorded_events(restored[1].events["r-1"])
    assert event.output == "x" * 3_000_000
    assert len(restored[1].keys["r-1"]) == 1 + 6  # the pointer and its parts
