"""Kafka records the coordinator produces: commands, results, dead letters.

Every record's key is the request id, so all records of one request share a
partition; CloudEvents ids are deterministic, so consumers can drop duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from contracts import cloudevents
from contracts.base import SCHEMA_VERSION
from contracts.cloudevents import KafkaHeaders
from orchestrator.saga.messages import DispatchCall


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    """One record to produce."""

    topic: str
    key: bytes | None
    value: bytes
    headers: KafkaHeaders


def command_record(
    action: DispatchCall,
    *,
    topic: str,
    reply_topic: str,
    reply_partition: int,
    source: str,
    now_ms: int,
) -> OutgoingRecord:
    """A :class:`contracts.StepCommand` for a remote adapter."""
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
    """The original record, untouched, with ``dlq_*`` headers saying why it is here."""
    extra = [
        ("dlq_code", code.encode()),
        ("dlq_reason", reason.encode()),
        ("dlq_topic", origin_topic.encode()),
        ("dlq_partition", str(origin_partition).encode()),
        ("dlq_offset", str(origin_offset).encode()),
    ]
    return OutgoingRecord(topic=topic, key=key, value=value or b"", headers=[*headers, *extra])
