"""Run an SDK :class:`~handlers.sdk.Service` as a remote adapter over Kafka.

The worker consumes step commands from the service's command topic, runs the
operation, and publishes a step reply to the topic and partition the command
names (``ce_replytopic``/``ce_replypartition``), with the command's correlation id.
The command's offset is committed only after the reply is acknowledged, so a
crash re-answers the command instead of losing it; the coordinator ignores the
duplicate answer. A reply that fails to publish for a transient reason is not
acked (the command comes again); one that can never be published (too large) is
replaced by a ``technical_error`` reply (``reply.undeliverable``).

With tracing on (see :mod:`handlers.tracing`), a command is processed in a consumer
span continuing the ``traceparent`` of its header (the coordinator's producer
span), and its reply is published in a producer span whose ``traceparent`` the
reply carries back. With tracing off, no span is made and no header is parsed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from faststream import AckPolicy, FastStream
from faststream.exceptions import NackMessage
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from opentelemetry.trace import SpanKind, TracerProvider
from pydantic import ValidationError

from contracts import cloudevents
from contracts.base import SCHEMA_VERSION
from contracts.events import StepCommand
from handlers.context import CallContext
from handlers.outcome import CallOutcome
from handlers.sdk import Service
from handlers.tracing import context_from, current_trace_headers, kafka_attributes, tracer_of

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reply:
    """A reply to publish."""

    topic: str
    partition: int
    key: bytes
    value: bytes
    headers: dict[str, str]
    request_id: str
    correlation_id: str

    def as_technical_error(self, code: str, message: str) -> Reply:
        """The same reply, reporting a technical error instead of its output."""
        payload = {
            "schema_version": SCHEMA_VERSION,
            "request_id": self.request_id,
            "correlation_id": self.correlation_id,
            "status": "technical_error",
            "output": None,
            "error": {"code": code, "message": message},
        }
        return Reply(
            topic=self.topic,
            partition=self.partition,
            key=self.key,
            value=orjson.dumps(payload),
            headers=self.headers,
            request_id=self.request_id,
            correlation_id=self.correlation_id,
        )


@dataclass(frozen=True, slots=True)
class Unanswerable:
    """A command that cannot be answered; it goes to the dead-letter topic."""

    code: str
    reason: str


async def answer_command(
    service: Service,
    *,
    value: bytes,
    headers: dict[str, str],
    source: str,
    now_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
) -> Reply | Unanswerable:
    """Run the command in ``value`` and build its reply.

    The operation gets the command's :class:`CallContext` (request id, call,
    attempt, idempotency key, deadline, flow, step); an outcome's
    ``retry_after_ms`` is passed on in the reply.

    A command past its ``deadline_ms`` is not run (the coordinator has already
    timed the call out): it is answered ``command.expired``. A running operation is
    cut off at the deadline (``adapter.timeout``), so a hung call frees the worker.
    """
    reply_topic = headers.get(cloudevents.REPLY_TOPIC)
    reply_partition = headers.get(cloudevents.REPLY_PARTITION, "")
    if not reply_topic or not reply_partition.isdigit():
        return Unanswerable(
            "command.missing_headers",
            f"a step command needs {cloudevents.REPLY_TOPIC} "
            f"and {cloudevents.REPLY_PARTITION} headers",
        )
    try:
        command = StepCommand.model_validate(orjson.loads(value))
    except (orjson.JSONDecodeError, ValidationError) as error:
        return Unanswerable(
            "command.invalid", f"not a valid step command: {str(error).splitlines()[0]}"
        )
    remaining_ms = command.deadline_ms - now_ms()
    if remaining_ms <= 0:
        outcome = CallOutcome.technical_error(
            "command.expired",
            f"the command arrived {-remaining_ms} ms after its deadline; it was not run",
        )
    else:
        try:
            outcome = await asyncio.wait_for(
                service.invoke(command.operation, command.input, _context_of(command)),
                remaining_ms / 1000,
            )
        except TimeoutError:
            outcome = CallOutcome.technical_error(
                "adapter.timeout", f"{service.name}.{command.operation} ran past the deadline"
            )
    payload: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "request_id": command.request_id,
        "correlation_id": command.correlation_id,
        "status": outcome.status,
        "output": outcome.output,
        "error": None
        if outcome.status == "ok"
        else {"code": outcome.error_code, "message": outcome.error_message},
    }
    if outcome.retry_after_ms is not None:
        # Only when set: a coordinator without the field rejects unknown fields.
        payload["retry_after_ms"] = outcome.retry_after_ms
    reply_headers = {
        name: raw.decode()
        for name, raw in cloudevents.build_headers(
            event_id=f"{command.correlation_id}:reply",
            event_type=cloudevents.TYPE_STEP_REPLY,
            source=source,
            time_ms=now_ms(),
            extensions=((cloudevents.CORRELATION_ID, command.correlation_id),),
        )
    }
    return Reply(
        topic=reply_topic,
        partition=int(reply_partition),
        key=command.request_id.encode(),
        value=orjson.dumps(payload),
        headers=reply_headers,
        request_id=command.request_id,
        correlation_id=command.correlation_id,
    )


def _context_of(command: StepCommand) -> CallContext:
    return CallContext(
        request_id=command.request_id,
        call=command.call,
        attempt=command.attempt,
        idempotency_key=command.idempotency_key,
        deadline_ms=command.deadline_ms,
        flow=command.flow,
        step=command.step,
    )


def _is_retriable(error: BaseException) -> bool:
    return bool(getattr(error, "retriable", False))


def build_worker(
    service: Service,
    *,
    bootstrap_servers: str,
    group_id: str | None = None,
    dead_letter_topic: str = "orchestrator.dlq",
    tracer_provider: TracerProvider | None = None,
) -> tuple[KafkaBroker, FastStream]:
    """Build the FastStream broker and app that serve ``service`` over Kafka.

    ``tracer_provider``: where its spans go (default: the global provider; tracing
    is off unless that is an SDK provider).
    """
    tracer = tracer_of(tracer_provider)
    group = group_id or f"adapter.{service.name}"
    # Per-message access logs at DEBUG: at INFO they cost more than the work.
    broker = KafkaBroker(
        bootstrap_servers, acks="all", enable_idempotence=True, log_level=logging.DEBUG
    )
    source = f"urn:orchestrator:adapter:{service.name}"

    async def send(reply: Reply, headers: dict[str, str]) -> None:
        await broker.publish(
            reply.value, reply.topic, key=reply.key, partition=reply.partition, headers=headers
        )

    async def publish(reply: Reply) -> None:
        if tracer is None:
            await send(reply, reply.headers)
            return
        with tracer.start_as_current_span(
            f"send {reply.topic}",
            kind=SpanKind.PRODUCER,
            attributes=kafka_attributes(
                operation="send",
                topic=reply.topic,
                key=reply.request_id,
                partition=reply.partition,
                message_id=f"{reply.correlation_id}:reply",
            ),
        ):
            # The reply carries the context back to the coordinator.
            await send(reply, {**reply.headers, **current_trace_headers()})

    @broker.subscriber(
        service.command_topic,
        group_id=group,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.ACK,
        # The broker answers a fetch as soon as a command arrives; this only
        # bounds how long an idle fetch is held, which sets the latency floor.
        fetch_max_wait_ms=20,
    )
    async def handle_command(message: KafkaMessage) -> None:
        raw = message.raw_message
        record = raw[0] if isinstance(raw, tuple) else raw
        value: bytes = record.value or b""
        headers = cloudevents.headers_to_dict(record.headers)
        if tracer is None:
            await handle(record, value, headers)
            return
        with tracer.start_as_current_span(
            f"process {record.topic}",
            context=context_from(headers),
            kind=SpanKind.CONSUMER,
            attributes=kafka_attributes(
                operation="process",
                topic=record.topic,
                key=record.key.decode(errors="replace") if record.key else None,
                partition=record.partition,
                offset=record.offset,
                message_id=headers.get(cloudevents.ID),
                group=group,
            ),
        ):
            await handle(record, value, headers)

    async def handle(record: Any, value: bytes, headers: dict[str, str]) -> None:
        answer = await answer_command(service, value=value, headers=headers, source=source)
        if isinstance(answer, Reply):
            try:
                await publish(answer)
            except Exception as error:
                if _is_retriable(error):
                    # Not acked: FastStream seeks back and the command comes again.
                    raise NackMessage() from error
                logger.error("reply %s cannot be published: %r", answer.correlation_id, error)
                # FastStream acks after a failed handler too (AckPolicy.ACK), so the
                # command would vanish unanswered; say why instead.
                await publish(
                    answer.as_technical_error(
                        "reply.undeliverable",
                        f"the adapter's reply could not be published: {error}",
                    )
                )
            return
        logger.warning("dead-lettering command at offset %s: %s", record.offset, answer.reason)
        dead_headers = {
            **headers,
            "dlq_code": answer.code,
            "dlq_reason": answer.reason,
            "dlq_topic": record.topic,
            "dlq_partition": str(record.partition),
            "dlq_offset": str(record.offset),
        }
        try:
            await broker.publish(value, dead_letter_topic, key=record.key, headers=dead_headers)
        except Exception as error:
            if _is_retriable(error):
                raise NackMessage() from error
            raise

    return broker, FastStream(broker)
