"""Authentic replies over the real broker: forged answers never reach a saga.

A forger reads every step command as it is sent and at once publishes two ``ok``
replies with the right correlation id onto the partition the command names: one
without a ``reply_token``, one with a wrong one. The real worker answers later.
Every forged reply is dead-lettered (``reply.unauthenticated``) and every saga
gets the worker's answer. A coordinator restarted while a command is out keeps
the saga's secret: the re-issued command carries the same token, and the replies
to both verify.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import BaseModel

from contracts import cloudevents
from handlers.sdk import Service
from handlers.worker import build_worker
from orchestrator.client import OrchestratorClient
from orchestrator.runtime.coordinator import SagaCoordinator
from orchestrator.settings import CoordinatorSettings
from tests.integration.kafka_io import partitions_of, read_topic
from tests.integration.saga_flows import FLOW, kafka_service, running, saga_registry

pytestmark = pytest.mark.kafka

SAGAS = 20


class Entry(BaseModel):
    id: str


def ledger(command_topic: str, *, delay_s: float) -> Service:
    service = Service("ledger", command_topic=command_topic)

    @service.operation
    async def post(entry: Entry) -> Entry:
        await asyncio.sleep(delay_s)  # the forger's replies get there first
        return Entry(id=f"real-{entry.id}")

    return service


def registry_for(command_topic: str) -> Any:
    return saga_registry(
        {"ledger": kafka_service(command_topic)},
        {"post": {"service": "ledger", "operation": "post", "input": {"id": "input.id"}}},
        result="post",
        defaults={"timeout_ms": 20_000},
    )


async def forge_replies(bootstrap: str, command_topic: str, forged: list[str]) -> None:
    """Answer every command on ``command_topic`` at once, twice, without its token."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await consumer.start()
    await producer.start()
    try:
        assigned = await partitions_of(consumer, command_topic)
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        while True:
            batch = await consumer.getmany(timeout_ms=100)
            for records in batch.values():
                for record in records:
                    command = orjson.loads(record.value)
                    headers = cloudevents.headers_to_dict(record.headers)
                    correlation = command["correlation_id"]
                    for token in (None, "forged-token"):
                        reply: dict[str, Any] = {
                            "schema_version": 1,
                            "request_id": command["request_id"],
                            "correlation_id": correlation,
                            "status": "ok",
                            "output": {"id": "FORGED"},
                        }
                        if token is not None:
                            reply["reply_token"] = token
                        await producer.send_and_wait(
                            headers[cloudevents.REPLY_TOPIC],
                            value=orjson.dumps(reply),
                            key=record.key,
                            partition=int(headers[cloudevents.REPLY_PARTITION]),
                            headers=cloudevents.build_headers(
                                event_id=f"{correlation}:reply",
                                event_type=cloudevents.TYPE_STEP_REPLY,
                                source="urn:forger",
                                time_ms=0,
                                extensions=((cloudevents.CORRELATION_ID, correlation),),
                            ),
                        )
                        forged.append(correlation)
    finally:
        await consumer.stop()
        await producer.stop()


async def test_forged_replies_are_dead_lettered_and_every_saga_gets_the_real_answer(
    settings: CoordinatorSettings, topic_prefix: str
) -> None:
    command_topic = f"{topic_prefix}.ledger.commands"
    worker, _ = build_worker(
        ledger(command_topic, delay_s=0.5),
        bootstrap_servers=settings.bootstrap_servers,
        group_id=f"{topic_prefix}.ledger",
        dead_letter_topic=settings.dead_letter_topic,
        reply_topics=[settings.reply_topic],
        concurrency=SAGAS,
    )
    forged: list[str] = []
    async with running(settings, registry_for(command_topic)) as (_, client):
        await worker.start()
        forger = asyncio.create_task(
            forge_replies(settings.bootstrap_servers, command_topic, forged)
        )
        try:
            results = await asyncio.gather(
                *(
                    client.run(FLOW, {"id": f"e-{n}"}, request_id=f"auth-{n}", timeout_s=60)
                    for n in range(SAGAS)
                )
            )
        finally:
            forger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await forger
            await worker.stop()
        dead = await read_topic(
            settings.bootstrap_servers, settings.dead_letter_topic, expect=2 * SAGAS
        )

    assert [result["status"] for result in results] == ["completed"] * SAGAS
    assert [result["data"] for result in results] == [{"id": f"real-e-{n}"} for n in range(SAGAS)]
    assert len(forged) == 2 * SAGAS, "the forger answered every command twice"
    codes = [cloudevents.headers_to_dict(record.headers)["dlq_code"] for record in dead]
    assert codes == ["reply.unauthenticated"] * (2 * SAGAS)
    assert sorted(orjson.loads(record.value)["correlation_id"] for record in dead) == sorted(forged)


async def test_replies_still_verify_after_a_coordinator_restart(
    settings: CoordinatorSettings, topic_prefix: str
) -> None:
    command_topic = f"{topic_prefix}.ledger.commands"
    registry = registry_for(command_topic)
    # The first coordinator sends the command; no worker answers it yet.
    async with (
        SagaCoordinator(registry=registry, settings=settings),
        OrchestratorClient(settings) as client,
    ):
        await client.submit(FLOW, {"id": "e-1"}, request_id="restart-1")
        [first] = await read_topic(settings.bootstrap_servers, command_topic, expect=1)
    worker, _ = build_worker(
        ledger(command_topic, delay_s=0),
        bootstrap_servers=settings.bootstrap_servers,
        group_id=f"{topic_prefix}.ledger",
        dead_letter_topic=settings.dead_letter_topic,
        reply_topics=[settings.reply_topic],
    )
    # The second restores the saga (its secret with it) and re-issues the command.
    async with SagaCoordinator(registry=registry, settings=settings) as second:
        await worker.start()
        try:
            [record] = await read_topic(
                settings.bootstrap_servers, settings.result_topic, expect=1, timeout_s=60
            )
            commands = await read_topic(settings.bootstrap_servers, command_topic, expect=2)
        finally:
            await worker.stop()
        restored = second.restored_sagas
    dead = await read_topic(
        settings.bootstrap_servers, settings.dead_letter_topic, expect=0, settle_s=2.0
    )
    result = orjson.loads(record.value)

    assert restored == 1
    assert (result["status"], result["data"]) == ("completed", {"id": "real-e-1"})
    tokens = {orjson.loads(record.value)["reply_token"] for record in commands}
    assert tokens == {orjson.loads(first.value)["reply_token"]}, "one token, restart or not"
    assert None not in tokens
    assert dead == [], "the replies to both commands verified"
