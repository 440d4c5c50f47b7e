"""The SDK worker over the real broker: concurrency, replies that cannot be encoded,
forged reply topics, backoff on a failing publish, and dead letters of records of
the broker's maximum size.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from pydantic import BaseModel

from contracts import cloudevents
from contracts.events import StepReply
from handlers import worker_delivery
from handlers.sdk import Service
from handlers.worker import WorkerBroker, build_worker
from orchestrator.runtime.coordinator import SagaCoordinator
from orchestrator.settings import CoordinatorSettings
from tests.integration.kafka_io import committed_offsets, publish_raw, read_topic
from tests.integration.saga_flows import kafka_service, saga_registry

pytestmark = pytest.mark.kafka


class Entry(BaseModel):
    id: str


def command(n: int, operation: str) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "request_id": f"r-{n}",
        "flow": "f",
        "step": "s",
        "call": "s",
        "attempt": 1,
        "service": "slow",
        "operation": operation,
        "input": {"id": f"e-{n}"},
        "deadline_ms": time.time_ns() // 1_000_000 + 120_000,
        "correlation_id": f"r-{n}:s:1",
        "idempotency_key": f"r-{n}:s",
        "reply_token": f"token-{n}",
    }


async def send_command(
    bootstrap: str, topic: str, body: dict[str, Any], *, reply_topic: str
) -> None:
    await publish_raw(
        bootstrap,
        topic,
        value=orjson.dumps(body),
        key=body["request_id"].encode(),
        headers=[
            (cloudevents.REPLY_TOPIC, reply_topic.encode()),
            (cloudevents.REPLY_PARTITION, b"0"),
        ],
        partition=0,
    )


async def create_topics(bootstrap: str, *names: str, max_message_bytes: int | None = None) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        configs = {} if max_message_bytes is None else {"max.message.bytes": str(max_message_bytes)}
        await admin.create_topics(
            [
                NewTopic(name, num_partitions=1, replication_factor=1, topic_configs=configs)
                for name in names
            ]
        )
    finally:
        await admin.close()


@asynccontextmanager
async def serving(
    service: Service, bootstrap: str, topic_prefix: str, **options: Any
) -> AsyncIterator[WorkerBroker]:
    broker, _ = build_worker(
        service,
        bootstrap_servers=bootstrap,
        group_id=f"{topic_prefix}.worker",
        dead_letter_topic=f"{topic_prefix}.dlq",
        reply_topics=[f"{topic_prefix}.replies"],
        **options,
    )
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()


def slow_service(topic_prefix: str, ran: list[str]) -> Service:
    service = Service("slow", command_topic=f"{topic_prefix}.slow.commands")

    @service.operation
    async def nap(entry: Entry) -> Entry:
        ran.append(entry.id)
        await asyncio.sleep(1.0)
        return entry

    @service.operation
    async def huge(entry: Entry) -> dict[str, int]:
        ran.append(entry.id)
        return {"big": 2**70}  # valid for pydantic, not for orjson

    return service


async def test_ten_slow_commands_on_one_partition_run_at_once(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    ran: list[str] = []
    service = slow_service(topic_prefix, ran)
    replies = f"{topic_prefix}.replies"
    await create_topics(kafka_bootstrap, service.command_topic, replies, f"{topic_prefix}.dlq")
    for n in range(10):
        await send_command(
            kafka_bootstrap, service.command_topic, command(n, "nap"), reply_topic=replies
        )
    started = time.monotonic()
    async with serving(service, kafka_bootstrap, topic_prefix, concurrency=10):
        records = await read_topic(kafka_bootstrap, replies, expect=10, timeout_s=60)
        elapsed = time.monotonic() - started
        await asyncio.sleep(0.5)  # the last commit
    committed = await committed_offsets(
        kafka_bootstrap, f"{topic_prefix}.worker", service.command_topic
    )

    parsed = [StepReply.model_validate_json(record.value) for record in records]
    assert sorted(reply.correlation_id for reply in parsed) == sorted(
        f"r-{n}:s:1" for n in range(10)
    )
    assert {reply.status for reply in parsed} == {"ok"}
    assert sorted(reply.reply_token or "" for reply in parsed) == sorted(
        f"token-{n}" for n in range(10)
    )
    # One at a time would take 10 s; together about 1 s (plus start-up): generous.
    assert elapsed < 7.0, f"10 one-second commands took {elapsed:.1f} s"
    assert committed == {0: 10}, "every offset committed once done"


async def test_an_unencodable_output_is_an_error_reply_not_a_lost_command(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    ran: list[str] = []
    service = slow_service(topic_prefix, ran)
    replies = f"{topic_prefix}.replies"
    await create_topics(kafka_bootstrap, service.command_topic, replies, f"{topic_prefix}.dlq")
    await send_command(
        kafka_bootstrap, service.command_topic, command(1, "huge"), reply_topic=replies
    )
    async with serving(service, kafka_bootstrap, topic_prefix):
        [record] = await read_topic(kafka_bootstrap, replies, expect=1, timeout_s=60)

    reply = StepReply.model_validate_json(record.value)
    assert (reply.status, reply.correlation_id, reply.reply_token) == (
        "technical_error",
        "r-1:s:1",
        "token-1",
    )
    assert reply.error is not None
    assert reply.error.code == "adapter.output_unencodable"
    assert ran == ["e-1"]


async def test_a_command_naming_another_topic_is_dead_lettered_and_nothing_is_written_there(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    ran: list[str] = []
    service = slow_service(topic_prefix, ran)
    results = f"{topic_prefix}.results"
    dlq = f"{topic_prefix}.dlq"
    await create_topics(
        kafka_bootstrap, service.command_topic, results, dlq, f"{topic_prefix}.replies"
    )
    await send_command(
        kafka_bootstrap, service.command_topic, command(1, "nap"), reply_topic=results
    )
    async with serving(service, kafka_bootstrap, topic_prefix):
        [dead] = await read_topic(kafka_bootstrap, dlq, expect=1, timeout_s=60)
    written = await read_topic(kafka_bootstrap, results, expect=0, settle_s=1.0)

    headers = cloudevents.headers_to_dict(dead.headers)
    assert headers["dlq_code"] == "command.reply_topic_refused"
    assert results in headers["dlq_reason"]
    assert written == []
    assert ran == [], "a command that cannot be answered is not run"


async def test_a_failing_reply_publish_backs_off_without_running_the_command_again(
    kafka_bootstrap: str, topic_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[str] = []
    service = slow_service(topic_prefix, ran)
    replies = f"{topic_prefix}.replies"
    await create_topics(kafka_bootstrap, service.command_topic, replies, f"{topic_prefix}.dlq")
    pauses: list[float] = []

    async def pause(seconds: float) -> None:
        pauses.append(seconds)
        await asyncio.sleep(0.01)

    monkeypatch.setattr(worker_delivery, "_pause", pause)
    original = WorkerBroker.publish
    failures = 0

    async def flaky(self: WorkerBroker, *args: Any, **kwargs: Any) -> Any:
        nonlocal failures
        if failures < 3:
            failures += 1
            raise KafkaConnectionError("the broker went away")
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(WorkerBroker, "publish", flaky)
    body = command(1, "nap")
    await send_command(kafka_bootstrap, service.command_topic, body, reply_topic=replies)
    async with serving(service, kafka_bootstrap, topic_prefix):
        [record] = await read_topic(kafka_bootstrap, replies, expect=1, timeout_s=60)

    assert StepReply.model_validate_json(record.value).status == "ok"
    assert ran == ["e-1"], "the operation ran once; only its reply was sent again"
    assert pauses == [0.1, 0.2, 0.4], "each retry waits longer than the one before"


async def test_a_reply_of_the_maximum_size_does_not_hold_its_partition(
    settings: CoordinatorSettings, topic_prefix: str
) -> None:
    limit = 64 * 1024
    await create_topics(
        settings.bootstrap_servers,
        settings.reply_topic,
        settings.dead_letter_topic,
        settings.request_topic,
        max_message_bytes=limit,
    )
    settings = settings.replace(partitions=1)
    registry = saga_registry(
        {"ledger": kafka_service(f"{topic_prefix}.ledger.commands")},
        {"post": {"service": "ledger", "operation": "post", "input": {"id": "input.id"}}},
    )
    async with SagaCoordinator(registry=registry, settings=settings):
        # Not a valid reply, its bulk in a header named like a dead letter's own:
        # the dead letter (the record plus dlq_* headers) is over the limit, and
        # so was its value-less fallback, which kept every dlq_* header.
        await publish_largest(settings.bootstrap_servers, settings.reply_topic, limit=limit)
        [dead] = await read_topic(settings.bootstrap_servers, settings.dead_letter_topic, expect=1)
        deadline = time.monotonic() + 30
        committed: dict[int, int | None] = {}
        while time.monotonic() < deadline:
            committed = await committed_offsets(
                settings.bootstrap_servers, settings.group_id, settings.reply_topic
            )
            if committed.get(0) == 1:
                break
            await asyncio.sleep(0.2)

    headers = cloudevents.headers_to_dict(dead.headers)
    assert headers["dlq_code"] == "reply.invalid"
    assert "dlq_padding" not in headers
    assert "dlq_dropped" in headers
    assert dead.value == b""
    assert len(dead.key) == 1024
    assert committed == {0: 1}, "the reply partition moved past the record"


async def publish_largest(bootstrap: str, topic: str, *, limit: int) -> None:
    """Publish the largest such record the topic accepts (within a few bytes)."""
    padding = limit - 2000
    while True:
        try:
            await publish_raw(
                bootstrap,
                topic,
                value=b"{}",
                key=b"k" * 2000,
                headers=[("dlq_padding", b"p" * padding)],
                partition=0,
            )
            return
        except MessageSizeTooLargeError:
            padding -= 8


async def test_a_command_of_the_maximum_size_is_dead_lettered_without_its_value(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    limit = 64 * 1024
    service = slow_service(topic_prefix, [])
    dlq = f"{topic_prefix}.dlq"
    await create_topics(
        kafka_bootstrap,
        service.command_topic,
        dlq,
        f"{topic_prefix}.replies",
        max_message_bytes=limit,
    )
    await publish_largest(kafka_bootstrap, service.command_topic, limit=limit)
    async with serving(service, kafka_bootstrap, topic_prefix):
        [dead] = await read_topic(kafka_bootstrap, dlq, expect=1, timeout_s=60)
        await asyncio.sleep(0.5)  # the commit
    committed = await committed_offsets(
        kafka_bootstrap, f"{topic_prefix}.worker", service.command_topic
    )

    headers = cloudevents.headers_to_dict(dead.headers)
    assert headers["dlq_code"] == "command.missing_headers"
    assert "dlq_padding" not in headers
    assert "dlq_dropped" in headers
    assert (dead.value, len(dead.key)) == (b"", 1024)
    assert committed == {0: 1}, "the command's offset moved on"


async def test_a_command_naming_a_partition_that_does_not_exist_is_dead_lettered(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    service = slow_service(topic_prefix, [])
    replies = f"{topic_prefix}.replies"
    dlq = f"{topic_prefix}.dlq"
    await create_topics(kafka_bootstrap, service.command_topic, replies, dlq)
    body = command(1, "huge")  # answers at once
    await publish_raw(
        kafka_bootstrap,
        service.command_topic,
        value=orjson.dumps(body),
        key=b"r-1",
        headers=[
            (cloudevents.REPLY_TOPIC, replies.encode()),
            (cloudevents.REPLY_PARTITION, b"7"),
        ],
    )
    async with serving(service, kafka_bootstrap, topic_prefix):
        [dead] = await read_topic(kafka_bootstrap, dlq, expect=1, timeout_s=60)
    written = await read_topic(kafka_bootstrap, replies, expect=0, settle_s=1.0)

    headers = cloudevents.headers_to_dict(dead.headers)
    assert headers["dlq_code"] == "command.reply_topic_refused"
    assert "partition 7" in headers["dlq_reason"]
    assert written == []
