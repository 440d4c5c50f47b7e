"""Kafka records the coordinator produces: commands, results, dead letters.

Every record's key is the request id, so all records of one request share a
partition; CloudEvents ids are deterministic, so consumers can drop duplicates.

A dead letter keeps the original record and says why in ``dlq_*`` headers. Its
reason is cut to :data:`MAX_REASON_CHARS` (a validation error may quote the whole
input), and :func:`dead_letter_without_value` is the small dead letter to publish
instead when Kafka refuses the full one for good (too large).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from contracts import cloudevents
from contracts.base import SCHEMA_VERSION
from contracts.cloudevents import KafkaHeaders
from orchestrator.saga.messages import DispatchCall

MAX_REASON_CHARS = 2_000
"""The longest ``dlq_reason`` a dead letter carries, the cut marker included."""

DLQ_HEADER_PREFIX = "dlq_"
"""The prefix of the headers a dead letter adds to the original record's."""

DLQ_HEADERS = ("dlq_code", "dlq_reason", "dlq_topic", "dlq_partition", "dlq_offset")
"""The headers :func:`dead_letter_record` adds, in order, after the original's."""

MAX_FALLBACK_KEY_BYTES = 1_024
"""A value-less dead letter keeps at most this much of the original key."""


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    """One record to produce."""

    topic: str
    key: bytes | None
    value: bytes
    headers: KafkaHeaders
    partition: int | None = None
    """None: the producer picks it from the key."""


def command_record(
    action: DispatchCall,
    *,
    topic: str,
    reply_topic: str,
    reply_partition: int,
    source: str,
    now_ms: int,
    reply_token: str | None = None,
) -> OutgoingRecord:
    """A :class:`contracts.StepCommand` for a remote adapter (``reply_token``: what its
    reply must echo, see :mod:`orchestrator.runtime.reply_auth`)."""
    payload = {
        "schema_version": SCHEMA_VERSION,
        "request_id": action.request_id,
        "flow": action.flow,
        "step": action.step,
        "call": action.call,
        "attempt": action.attempt,
        "service": action.service,
        "operation": action.operation,
        "input": action.input,
        "deadline_ms": action.deadline_ms,
        "correlation_id": action.correlation_id,
        "idempotency_key": action.idempotency_key,
    }
    if reply_token is not None:
        payload["reply_token"] = reply_token
    headers = cloudevents.build_headers(
        event_id=action.correlation_id,
        event_type=cloudevents.TYPE_STEP_COMMAND,
        source=source,
        time_ms=now_ms,
        extensions=(
            (cloudevents.CORRELATION_ID, action.correlation_id),
            (cloudevents.REPLY_TOPIC, reply_topic),
            (cloudevents.REPLY_PARTITION, str(reply_partition)),
            (cloudevents.IDEMPOTENCY_KEY, action.idempotency_key),
        ),
    )
    return OutgoingRecord(
        topic=topic, key=action.request_id.encode(), value=orjson.dumps(payload), headers=headers
    )


def result_record(result: dict[str, Any], *, topic: str, source: str) -> OutgoingRecord:
    """A :class:`contracts.ResultEvent`; its id is ``<request id>:result``."""
    request_id = result["request_id"]
    headers = cloudevents.build_headers(
        event_id=f"{request_id}:result",
        event_type=cloudevents.TYPE_RESULT,
        source=source,
        time_ms=result["finished_at_ms"],
    )
    return OutgoingRecord(
        topic=topic, key=request_id.encode(), value=orjson.dumps(result), headers=headers
    )


def cap_reason(reason: str) -> str:
    """``reason`` cut to :data:`MAX_REASON_CHARS`, with a marker saying it was cut."""
    if len(reason) <= MAX_REASON_CHARS:
        return reason
    marker = f"... [cut: the reason had {len(reason)} characters]"
    return reason[: MAX_REASON_CHARS - len(marker)] + marker


def dead_letter_record(
    *,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    headers: KafkaHeaders,
    code: str,
    reason: str,
    origin_topic: str,
    origin_partition: int,
    origin_offset: int,
) -> OutgoingRecord:
    """The original record, untouched, with ``dlq_*`` headers saying why it is here.

    The reason is cut to :data:`MAX_REASON_CHARS` (see :func:`cap_reason`).
    """
    extra = [
        ("dlq_code", code.encode()),
        ("dlq_reason", cap_reason(reason).encode()),
        ("dlq_topic", origin_topic.encode()),
        ("dlq_partition", str(origin_partition).encode()),
        ("dlq_offset", str(origin_offset).encode()),
    ]
    return OutgoingRecord(topic=topic, key=key, value=value or b"", headers=[*headers, *extra])


def dead_letter_without_value(record: OutgoingRecord) -> OutgoingRecord:
    """The fallback of a dead letter Kafka refused for good (too large): its value dropped.

    Same topic, the ``dlq_*`` headers the dead letter added (code, reason, origin
    topic, partition and offset, where the original can still be read), an empty
    value, and a ``dlq_dropped`` header saying how many bytes of value, and how many
    of the original record's own headers, were left out. The original's own headers
    go, even those named ``dlq_*`` (a record of the broker's maximum size may carry
    its bulk in one), and a key over :data:`MAX_FALLBACK_KEY_BYTES` is cut: so the
    fallback always fits, and the partition's offset moves on. The value is empty
    rather than null like everywhere in the dead-letter topic (aiokafka also refuses
    a record with neither key nor value).
    """
    added = len(DLQ_HEADERS)
    own = record.headers[-added:] if len(record.headers) >= added else []
    kept = own if tuple(name for name, _ in own) == DLQ_HEADERS else []
    dropped = f"the original value of {len(record.value)} bytes was too large to keep"
    if len(kept) < len(record.headers):
        dropped += f" (its {len(record.headers) - len(kept)} other headers were dropped too)"
    key = record.key
    if key is not None and len(key) > MAX_FALLBACK_KEY_BYTES:
        dropped += f"; its key of {len(key)} bytes was cut to {MAX_FALLBACK_KEY_BYTES}"
        key = key[:MAX_FALLBACK_KEY_BYTES]
    return OutgoingRecord(
        topic=record.topic,
        key=key,
        value=b"",
        headers=[*kept, ("dlq_dropped", dropped.encode())],
    )
