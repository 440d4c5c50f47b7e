"""The Kafka worker of an SDK service: answering commands, and the FastStream wiring."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import orjson
import pytest
from faststream.kafka import TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pydantic import BaseModel

from contracts import cloudevents
from contracts.events import StepReply
from handlers import CallContext, CallOutcome, Service
from handlers.demo.inventory import inventory
from handlers.worker import Reply, Unanswerable, WorkerBroker, answer_command, build_worker
from tests.integration.kafka_io import publish_raw, read_topic

SOURCE = "urn:orchestrator:adapter:inventory"
REPLY_HEADERS = {cloudevents.REPLY_TOPIC: "orch.replies", cloudevents.REPLY_PARTITION: "3"}


def command(**overrides: Any) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "request_id": "r-1",
        "flow": "order-details",
        "step": "stock",
        "call": "stock",
        "attempt": 2,
        "service": "inventory",
        "operation": "stock_levels",
        "input": {"product_ids": ["p-1", "p-404"]},
        "deadline_ms": time.time_ns() // 1_000_000 + 60_000,  # a minute from now
        "correlation_id": "r-1:stock:2",
        "idempotency_key": "r-1:stock",
        **overrides,
    }


async def settled(broker: WorkerBroker) -> None:
    """Wait for the commands the worker runs as tasks (in memory, nothing else waits)."""
    for _ in range(500):
        if broker.pool.in_flight == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the worker's commands did not finish")


async def answer(value: bytes, headers: dict[str, str] | None = None) -> Reply | Unanswerable:
    return await answer_command(
        inventory,
        value=value,
        headers=REPLY_HEADERS if headers is None else headers,
        source=SOURCE,
    )


async def test_valid_command_is_answered_on_the_reply_topic_and_partition() -> None:
    reply = await answer(orjson.dumps(command()))

    assert isinstance(reply, Reply)
    assert (reply.topic, reply.partition, reply.key) == ("orch.replies", 3, b"r-1")
    parsed = StepReply.model_validate_json(reply.value)
    assert parsed.correlation_id == "r-1:stock:2"
    assert parsed.request_id == "r-1"
    assert parsed.status == "ok"
    assert parsed.output == {
        "levels": [{"product_id": "p-1", "available": 12}, {"product_id": "p-404", "available": 0}]
    }


async def test_reply_carries_cloudevents_headers() -> None:
    reply = await answer(orjson.dumps(command()))

    assert isinstance(reply, Reply)
    assert cloudevents.missing_headers(reply.headers) == []
    assert reply.headers[cloudevents.TYPE] == cloudevents.TYPE_STEP_REPLY
    assert reply.headers[cloudevents.SOURCE] == SOURCE
    assert reply.headers[cloudevents.ID] == "r-1:stock:2:reply"
    assert reply.headers[cloudevents.CORRELATION_ID] == "r-1:stock:2"
    assert datetime.fromisoformat(reply.headers[cloudevents.TIME]).tzinfo is not None


@pytest.mark.parametrize(
    ("overrides", "status", "code"),
    [
        ({"operation": "restock"}, "business_error", "operation.unknown"),
        ({"input": {"product_ids": "p-1"}}, "business_error", "input.invalid"),
    ],
)
async def test_failed_operation_is_still_a_valid_reply(
    overrides: dict[str, Any], status: str, code: str
) -> None:
    reply = await answer(orjson.dumps(command(**overrides)))

    assert isinstance(reply, Reply)
    parsed = StepReply.model_validate_json(reply.value)
    assert parsed.status == status
    assert parsed.error is not None
    assert parsed.error.code == code
    assert parsed.output is None


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {cloudevents.REPLY_TOPIC: "orch.replies"},
        {cloudevents.REPLY_PARTITION: "1"},
        {cloudevents.REPLY_TOPIC: "", cloudevents.REPLY_PARTITION: "1"},
        {cloudevents.REPLY_TOPIC: "orch.replies", cloudevents.REPLY_PARTITION: "-1"},
        {cloudevents.REPLY_TOPIC: "orch.replies", cloudevents.REPLY_PARTITION: "one"},
    ],
)
async def test_missing_reply_headers_make_the_command_unanswerable(headers: dict[str, str]) -> None:
    answered = await answer(orjson.dumps(command()), headers)

    assert isinstance(answered, Unanswerable)
    assert answered.code == "command.missing_headers"
    assert "ce_replytopic" in answered.reason


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"not json",
        b"[1, 2]",
        orjson.dumps({"request_id": "r-1"}),
        orjson.dumps(command(attempt=0)),
        orjson.dumps(command(extra=True)),
    ],
)
async def test_invalid_command_is_unanswerable(value: bytes) -> None:
    answered = await answer(value)

    assert isinstance(answered, Unanswerable)
    assert answered.code == "command.invalid"
    assert answered.reason.startswith("not a valid step command: ")
    assert "\n" not in answered.reason


async def test_worker_broker_replies_and_dead_letters_in_memory() -> None:
    broker, _app = build_worker(
        inventory,
        bootstrap_servers="127.0.0.1:1",
        dead_letter_topic="test.dlq",
        reply_topics=["orch.replies"],
    )
    replies: list[Any] = []
    dead: list[Any] = []

    @broker.subscriber("orch.replies")
    async def on_reply(message: KafkaMessage) -> None:
        replies.append(message.raw_message)

    @broker.subscriber("test.dlq")
    async def on_dead(message: KafkaMessage) -> None:
        dead.append(message.raw_message)

    async with TestKafkaBroker(broker) as test_broker:
        await test_broker.publish(
            orjson.dumps(command()), inventory.command_topic, key=b"r-1", headers=REPLY_HEADERS
        )
        await test_broker.publish(
            b"garbage", inventory.command_topic, key=b"r-2", headers={"origin": "test"}
        )
        await settled(broker)

    [reply] = replies
    assert (reply.topic, reply.partition, reply.key) == ("orch.replies", 3, b"r-1")
    assert StepReply.model_validate_json(reply.value).correlation_id == "r-1:stock:2"
    assert cloudevents.headers_to_dict(reply.headers)[cloudevents.TYPE] == (
        cloudevents.TYPE_STEP_REPLY
    )
    [letter] = dead
    assert (letter.topic, letter.key, letter.value) == ("test.dlq", b"r-2", b"garbage")
    dead_headers = cloudevents.headers_to_dict(letter.headers)
    assert dead_headers["origin"] == "test"
    assert dead_headers["dlq_code"] == "command.missing_headers"
    assert dead_headers["dlq_topic"] == inventory.command_topic
    assert {"dlq_reason", "dlq_partition", "dlq_offset"} <= set(dead_headers)


class Reservation(BaseModel):
    order_id: str


def context_service(
    command_topic: str | None = None,
) -> tuple[Service, list[CallContext]]:
    """A service whose one operation records its context and answers with it."""
    service = Service("reservations", command_topic=command_topic)
    seen: list[CallContext] = []

    @service.operation
    async def reserve(order: Reservation, ctx: CallContext) -> dict[str, Any]:
        seen.append(ctx)
        return {"order_id": order.order_id, "idempotency_key": ctx.idempotency_key}

    return service, seen


def reserve_command(deadline_ms: int) -> dict[str, Any]:
    return command(
        request_id="r-5",
        flow="orders",
        step="reserve",
        call="reserve#3",
        attempt=2,
        service="reservations",
        operation="reserve",
        input={"order_id": "o-1"},
        deadline_ms=deadline_ms,
        correlation_id="r-5:reserve#3:2",
        idempotency_key="r-5:reserve#3",
    )


EXPECTED_CONTEXT = {
    "request_id": "r-5",
    "call": "reserve#3",
    "attempt": 2,
    "idempotency_key": "r-5:reserve#3",
    "flow": "orders",
    "step": "reserve",
}


def context_fields(context: CallContext) -> dict[str, Any]:
    return {name: getattr(context, name) for name in EXPECTED_CONTEXT}


async def test_a_remote_operation_receives_the_commands_context() -> None:
    service, seen = context_service()
    deadline_ms = time.time_ns() // 1_000_000 + 60_000

    reply = await answer_command(
        service,
        value=orjson.dumps(reserve_command(deadline_ms)),
        headers=REPLY_HEADERS,
        source=SOURCE,
    )

    assert isinstance(reply, Reply)
    [context] = seen
    assert context_fields(context) == EXPECTED_CONTEXT
    assert context.deadline_ms == deadline_ms
    parsed = StepReply.model_validate_json(reply.value)
    assert (parsed.status, parsed.correlation_id) == ("ok", "r-5:reserve#3:2")
    assert parsed.output == {"order_id": "o-1", "idempotency_key": "r-5:reserve#3"}


class Throttled(Service):
    """A service whose every call is a technical error asking for a later retry."""

    async def invoke(
        self, operation: str, payload: Any, context: CallContext | None = None
    ) -> CallOutcome:
        return CallOutcome.technical_error("upstream.busy", "try later", retry_after_ms=1500)


async def test_a_retry_after_of_the_outcome_is_in_the_reply() -> None:
    reply = await answer_command(
        Throttled("inventory"), value=orjson.dumps(command()), headers=REPLY_HEADERS, source=SOURCE
    )

    assert isinstance(reply, Reply)
    assert orjson.loads(reply.value)["retry_after_ms"] == 1500
    parsed = StepReply.model_validate_json(reply.value)
    assert (parsed.status, parsed.retry_after_ms) == ("technical_error", 1500)
    assert parsed.error is not None
    assert parsed.error.code == "upstream.busy"


async def test_a_reply_without_retry_after_does_not_carry_the_field() -> None:
    reply = await answer(orjson.dumps(command()))

    assert isinstance(reply, Reply)
    assert "retry_after_ms" not in orjson.loads(reply.value)


async def test_worker_broker_passes_the_context_in_memory() -> None:
    service, seen = context_service()
    broker, _app = build_worker(
        service, bootstrap_servers="127.0.0.1:1", reply_topics=["orch.replies"]
    )
    replies: list[Any] = []

    @broker.subscriber("orch.replies")
    async def on_reply(message: KafkaMessage) -> None:
        replies.append(message.raw_message)

    deadline_ms = time.time_ns() // 1_000_000 + 60_000
    async with TestKafkaBroker(broker) as test_broker:
        await test_broker.publish(
            orjson.dumps(reserve_command(deadline_ms)),
            service.command_topic,
            key=b"r-5",
            headers=REPLY_HEADERS,
        )
        await settled(broker)

    [context] = seen
    assert context_fields(context) == EXPECTED_CONTEXT
    assert context.deadline_ms == deadline_ms
    [reply] = replies
    assert StepReply.model_validate_json(reply.value).output == {
        "order_id": "o-1",
        "idempotency_key": "r-5:reserve#3",
    }


@pytest.mark.kafka
async def test_worker_passes_the_context_over_the_real_broker(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    service, seen = context_service(command_topic=f"{topic_prefix}.reservations.commands")
    reply_topic = f"{topic_prefix}.replies"
    deadline_ms = time.time_ns() // 1_000_000 + 90_000
    # Published first, so the worker finds its topic (and reads it from the start).
    await publish_raw(
        kafka_bootstrap,
        service.command_topic,
        value=orjson.dumps(reserve_command(deadline_ms)),
        key=b"r-5",
        headers=[
            (cloudevents.REPLY_TOPIC, reply_topic.encode()),
            (cloudevents.REPLY_PARTITION, b"0"),
        ],
    )
    broker, _app = build_worker(
        service,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"{topic_prefix}.reservations",
        dead_letter_topic=f"{topic_prefix}.dlq",
        reply_topics=[reply_topic],
    )
    await broker.start()
    try:
        records = await read_topic(kafka_bootstrap, reply_topic, expect=1, timeout_s=60)
    finally:
        await broker.stop()

    [record] = records
    assert (record.key, record.partition) == (b"r-5", 0)
    parsed = StepReply.model_validate_json(record.value)
    assert (parsed.status, parsed.correlation_id) == ("ok", "r-5:reserve#3:2")
    assert parsed.output == {"order_id": "o-1", "idempotency_key": "r-5:reserve#3"}
    [context] = seen
    assert context_fields(context) == EXPECTED_CONTEXT
    assert context.deadline_ms == deadline_ms


@pytest.mark.parametrize(
    ("allowed", "answered"),
    [
        (["orch.replies"], True),
        (["orch.*"], True),
        (["other.replies"], False),
        (["orch.replie"], False),
    ],
)
async def test_a_reply_goes_only_to_an_allowed_topic(allowed: list[str], answered: bool) -> None:
    ran: list[str] = []
    service = Service("inventory")

    @service.operation
    async def stock_levels(query: dict[str, Any]) -> dict[str, Any]:
        ran.append("ran")
        return {}

    reply = await answer_command(
        service,
        value=orjson.dumps(command()),
        headers=REPLY_HEADERS,
        source=SOURCE,
        reply_topics=allowed,
    )

    if answered:
        assert isinstance(reply, Reply)
        assert reply.topic == "orch.replies"
    else:
        assert isinstance(reply, Unanswerable)
        assert reply.code == "command.reply_topic_refused"
        assert "'orch.replies'" in reply.reason
        assert ran == [], "a command that cannot be answered is not run"


async def test_the_reply_echoes_the_commands_token() -> None:
    reply = await answer(orjson.dumps(command(reply_token="t0k3n")))

    assert isinstance(reply, Reply)
    assert StepReply.model_validate_json(reply.value).reply_token == "t0k3n"
    assert orjson.loads(reply.as_technical_error("x.y", "z").value)["reply_token"] == "t0k3n"


async def test_a_reply_without_a_token_in_the_command_does_not_carry_the_field() -> None:
    reply = await answer(orjson.dumps(command()))

    assert isinstance(reply, Reply)
    assert "reply_token" not in orjson.loads(reply.value)


@pytest.mark.parametrize(("concurrency", "topics"), [(0, ["r"]), (True, ["r"]), (2, []), (2, [""])])
def test_worker_settings_are_checked_at_build(concurrency: Any, topics: list[str]) -> None:
    from handlers.errors import AdapterSetupError

    with pytest.raises(AdapterSetupError):
        build_worker(
            inventory,
            bootstrap_servers="127.0.0.1:1",
            reply_topics=topics,
            concurrency=concurrency,
        )
