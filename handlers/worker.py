"""Run an SDK :class:`~handlers.sdk.Service` as a remote adapter over Kafka.

The worker consumes step commands from the service's command topic, runs the
operation (:func:`~handlers.command_answer.answer_command`), and publishes a step
reply to the topic and partition the command names (``ce_replytopic``/
``ce_replypartition``), if that topic is one of its ``reply_topics``; a command
naming another topic is dead-lettered (``command.reply_topic_refused``), not run.

Up to ``concurrency`` commands run at once (:mod:`handlers.worker_pool`); a
command's offset is committed only once it and every command before it on its
partition are answered, so a crash re-answers what was not finished instead of
losing it (the coordinator ignores a duplicate answer). A reply that fails to
publish for a transient reason is sent again with a growing backoff
(:mod:`handlers.worker_delivery`), without running the operation again; one that
can never be published (too large) is replaced by a ``technical_error`` reply
(``reply.undeliverable``); one whose partition does not exist, or whose topic the
worker may not write to, dead-letters its command. A dead letter too large for
Kafka is replaced by one without the command's value.

With tracing on (see :mod:`handlers.tracing`), a command is processed in a consumer
span continuing the ``traceparent`` of its header (the coordinator's producer
span), and its reply is published in a producer span whose ``traceparent`` the
reply carries back. With tracing off, no span is made and no header is parsed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from faststream import AckPolicy, FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.security import BaseSecurity
from opentelemetry.trace import SpanKind, Tracer, TracerProvider

from contracts import cloudevents
from handlers.command_answer import Reply, Unanswerable, answer_command
from handlers.errors import AdapterSetupError
from handlers.sdk import Service
from handlers.tracing import context_from, current_trace_headers, kafka_attributes, tracer_of
from handlers.worker_delivery import (
    dead_letter_headers,
    is_too_large,
    send_with_backoff,
    value_less_dead_letter,
)
from handlers.worker_parsing import raw_body, tolerant_parse
from handlers.worker_pool import CommandPool

__all__ = ["Reply", "Unanswerable", "WorkerBroker", "answer_command", "build_worker"]

logger = logging.getLogger(__name__)

DEFAULT_REPLY_TOPICS = ("orchestrator.replies",)
"""The coordinator's default ``ORCH_REPLY_TOPIC``."""
DEFAULT_CONCURRENCY = 16
STOP_GRACE_S = 10.0
"""How long a stop waits for commands in flight before abandoning them (uncommitted,
they are re-delivered)."""


class WorkerBroker(KafkaBroker):
    """The worker's FastStream broker: its stop first lets commands in flight finish."""

    pool: CommandPool

    async def stop(
        self,
        exc_type: type[BaseException] | None = None,
        exc_val: BaseException | None = None,
        exc_tb: TracebackType | None = None,
    ) -> None:
        # Before the producer closes: the commands running now publish their replies.
        await self.pool.drain(STOP_GRACE_S)
        await super().stop(exc_type, exc_val, exc_tb)


def build_worker(
    service: Service,
    *,
    bootstrap_servers: str,
    group_id: str | None = None,
    dead_letter_topic: str = "orchestrator.dlq",
    tracer_provider: TracerProvider | None = None,
    security: BaseSecurity | None = None,
    reply_topics: Sequence[str] = DEFAULT_REPLY_TOPICS,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> tuple[WorkerBroker, FastStream]:
    """Build the FastStream broker and app that serve ``service`` over Kafka.

    ``tracer_provider``: where its spans go (default: the global provider; tracing
    is off unless that is an SDK provider). ``security``: TLS/SASL for the broker
    connection (``orchestrator.kafka_security.faststream_security(settings)``).
    ``reply_topics``: the topics replies may go to (names or ``fnmatch`` patterns;
    default the coordinator's default reply topic). ``concurrency``: how many
    commands run at once.

    Raises:
        AdapterSetupError: ``concurrency`` is below 1, or ``reply_topics`` is empty.
    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise AdapterSetupError(
            f"The worker's concurrency must be a whole number of commands of at least 1, "
            f"not {concurrency!r}."
        )
    allowed = tuple(reply_topics)
    if not allowed or not all(isinstance(topic, str) and topic for topic in allowed):
        raise AdapterSetupError(
            "The worker needs at least one reply topic (the coordinator's ORCH_REPLY_TOPIC); "
            f"got {reply_topics!r}."
        )
    tracer = tracer_of(tracer_provider)
    group = group_id or f"adapter.{service.name}"
    # Per-message access logs at DEBUG: at INFO they cost more than the work.
    broker = WorkerBroker(
        bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        log_level=logging.DEBUG,
        security=security,
    )
    pool = broker.pool = CommandPool(concurrency)
    handler = _CommandHandler(
        service,
        broker=broker,
        tracer=tracer,
        reply_topics=allowed,
        dead_letter_topic=dead_letter_topic,
        group=group,
    )

    @broker.subscriber(
        service.command_topic,
        group_id=group,
        auto_offset_reset="earliest",
        # Offsets are the pool's to commit (in order, once done): FastStream's own
        # ack commits everything fetched so far.
        ack_policy=AckPolicy.MANUAL,
        # The broker answers a fetch as soon as a command arrives; this only
        # bounds how long an idle fetch is held, which sets the latency floor.
        fetch_max_wait_ms=20,
        # Every record must reach the handler, however broken (handlers.worker_parsing).
        parser=tolerant_parse,
        decoder=raw_body,
    )
    async def handle_command(message: KafkaMessage) -> None:
        raw = message.raw_message
        record = raw[0] if isinstance(raw, tuple) else raw

        async def work() -> None:
            await handler.traced(record)

        await pool.submit(
            work,
            consumer=getattr(message, "consumer", None),
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )

    return broker, FastStream(broker)


class _CommandHandler:
    """Answers one command and publishes its reply or its dead letter."""

    def __init__(
        self,
        service: Service,
        *,
        broker: WorkerBroker,
        tracer: Tracer | None,
        reply_topics: tuple[str, ...],
        dead_letter_topic: str,
        group: str,
    ) -> None:
        self._service = service
        self._broker = broker
        self._tracer = tracer
        self._reply_topics = reply_topics
        self._dead_letter_topic = dead_letter_topic
        self._group = group
        self._source = f"urn:orchestrator:adapter:{service.name}"

    def _closing(self) -> bool:
        return self._broker.pool.closing

    async def traced(self, record: Any) -> None:
        """Handle ``record``, in a consumer span when tracing is on."""
        value: bytes = record.value or b""
        headers = cloudevents.headers_to_dict(record.headers)
        if self._tracer is None:
            await self._handle(record, value, headers)
            return
        with self._tracer.start_as_current_span(
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
                group=self._group,
            ),
        ):
            await self._handle(record, value, headers)

    async def _send(self, reply: Reply, headers: dict[str, str]) -> None:
        await self._broker.publish(
            reply.value, reply.topic, key=reply.key, partition=reply.partition, headers=headers
        )

    async def _publish(self, reply: Reply) -> None:
        if self._tracer is None:
            await self._send(reply, reply.headers)
            return
        with self._tracer.start_as_current_span(
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
            await self._send(reply, {**reply.headers, **current_trace_headers()})

    async def _handle(self, record: Any, value: bytes, headers: dict[str, str]) -> None:
        answer = await answer_command(
            self._service,
            value=value,
            headers=headers,
            source=self._source,
            reply_topics=self._reply_topics,
        )
        if isinstance(answer, Unanswerable):
            await self._dead_letter(record, value, headers, answer)
            return
        what = f"the reply to {answer.correlation_id}"
        try:
            await send_with_backoff(lambda: self._publish(answer), what=what, closing=self._closing)
        except Exception as error:
            if not is_too_large(error):
                if self._closing():
                    raise  # not committed: the command comes again
                # An unknown partition, a topic it may not write to: no reply can
                # ever land there.
                logger.error("%s cannot be published: %r", what, error)
                await self._dead_letter(
                    record,
                    value,
                    headers,
                    Unanswerable(
                        "command.reply_topic_refused",
                        f"its reply cannot be published to {answer.topic!r} partition "
                        f"{answer.partition}: {type(error).__name__}: {error}",
                    ),
                )
                return
            logger.error("%s is too large to publish: %r", what, error)
            smaller = answer.as_technical_error(
                "reply.undeliverable", f"the adapter's reply could not be published: {error}"
            )
            await send_with_backoff(
                lambda: self._publish(smaller), what=what, closing=self._closing
            )

    async def _dead_letter(
        self, record: Any, value: bytes, headers: dict[str, str], answer: Unanswerable
    ) -> None:
        logger.warning("dead-lettering command at offset %s: %s", record.offset, answer.code)
        dlq = dead_letter_headers(
            code=answer.code,
            reason=answer.reason,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )
        what = f"the dead letter of {record.topic}[{record.partition}]@{record.offset}"
        topic = self._dead_letter_topic

        async def full() -> None:
            await self._broker.publish(value, topic, key=record.key, headers={**headers, **dlq})

        try:
            await send_with_backoff(full, what=what, closing=self._closing)
        except Exception as error:
            if not is_too_large(error):
                raise
            key, small = value_less_dead_letter(record.key, value, headers, dlq)

            async def value_less() -> None:
                await self._broker.publish(b"", topic, key=key, headers=small)

            await send_with_backoff(value_less, what=what, closing=self._closing)
