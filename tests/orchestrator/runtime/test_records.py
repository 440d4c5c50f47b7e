"""Records the coordinator produces: step commands, results, dead letters."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from contracts import cloudevents
from contracts.events import ResultEvent, StepCommand
from orchestrator.runtime.records import command_record, dead_letter_record, result_record
from orchestrator.saga.messages import DispatchCall

ACTION = DispatchCall(
    request_id="r-1",
    flow="order-details",
    step="products",
    call="products#2",
    attempt=1,
    service="inventory",
    operation="stock_levels",
    input={"product_ids": ["p-1"]},
    deadline_ms=6000,
    correlation_id="r-1:products#2:1",
    idempotency_key="r-1:products#2",
)
RESULT = {
    "schema_version": 2,
    "request_id": "r-1",
    "flow": "order-details",
    "flow_version": 1,
    "status": "completed",
    "complete": True,
    "data": {"total": 61.0},
    "steps": [],
    "errors": [],
    "started_at_ms": 1_000,
    "finished_at_ms": 1_700_000_000_000,
}


def test_command_record() -> None:
    record = command_record(
        ACTION,
        topic="inventory.commands",
        reply_topic="orch.replies",
        reply_partition=4,
        source="urn:orchestrator:coordinator",
        now_ms=0,
        reply_token="t0k3n",
    )

    assert (record.topic, record.key) == ("inventory.commands", b"r-1")
    command = StepCommand.model_validate_json(record.value)
    assert command.model_dump() == {
        "schema_version": 1,
        **{
            name: getattr(ACTION, name)
            for name in (
                "request_id",
                "flow",
                "step",
                "call",
                "attempt",
                "service",
                "operation",
                "input",
                "deadline_ms",
                "correlation_id",
                "idempotency_key",
            )
        },
        "reply_token": "t0k3n",
    }
    headers = cloudevents.headers_to_dict(record.headers)
    assert cloudevents.missing_headers(headers) == []
    assert headers[cloudevents.ID] == "r-1:products#2:1"
    assert headers[cloudevents.TYPE] == cloudevents.TYPE_STEP_COMMAND
    assert headers[cloudevents.SOURCE] == "urn:orchestrator:coordinator"
    assert headers[cloudevents.TIME] == "1970-01-01T00:00:00.000Z"
    assert headers[cloudevents.CORRELATION_ID] == "r-1:products#2:1"
    assert headers[cloudevents.REPLY_TOPIC] == "orch.replies"
    assert headers[cloudevents.REPLY_PARTITION] == "4"
    assert headers[cloudevents.IDEMPOTENCY_KEY] == "r-1:products#2"


def test_result_record() -> None:
    record = result_record(RESULT, topic="orch.results", source="urn:c")

    assert (record.topic, record.key) == ("orch.results", b"r-1")
    assert ResultEvent.model_validate_json(record.value).model_dump() == RESULT
    headers = cloudevents.headers_to_dict(record.headers)
    assert cloudevents.missing_headers(headers) == []
    assert headers[cloudevents.ID] == "r-1:result"
    assert headers[cloudevents.TYPE] == cloudevents.TYPE_RESULT
    assert datetime.fromisoformat(headers[cloudevents.TIME]) == datetime.fromtimestamp(
        1_700_000_000, tz=UTC
    )
    assert cloudevents.REPLY_TOPIC not in headers


ORIGINAL_HEADERS = [("ce_id", b"ce-9"), ("ce_type", b"orchestrator.request.v1"), ("x", b"\xff")]


@pytest.mark.parametrize(("key", "value", "stored"), [(b"k", b"{}", b"{}"), (None, None, b"")])
def test_dead_letter_record_keeps_the_original(
    key: bytes | None, value: bytes | None, stored: bytes
) -> None:
    record = dead_letter_record(
        topic="orch.dlq",
        key=key,
        value=value,
        headers=list(ORIGINAL_HEADERS),
        code="request.undecodable",
        reason="the payload is not a JSON object",
        origin_topic="orch.requests",
        origin_partition=2,
        origin_offset=417,
    )

    assert (record.topic, record.key, record.value) == ("orch.dlq", key, stored)
    assert record.headers[: len(ORIGINAL_HEADERS)] == ORIGINAL_HEADERS
    assert record.headers[len(ORIGINAL_HEADERS) :] == [
        ("dlq_code", b"request.undecodable"),
        ("dlq_reason", b"the payload is not a JSON object"),
        ("dlq_topic", b"orch.requests"),
        ("dlq_partition", b"2"),
        ("dlq_offset", b"417"),
    ]


def test_dead_letter_does_not_mutate_the_given_headers() -> None:
    original = list(ORIGINAL_HEADERS)

    dead_letter_record(
        topic="d",
        key=None,
        value=b"",
        headers=original,
        code="c",
        reason="r",
        origin_topic="t",
        origin_partition=0,
        origin_offset=0,
    )

    assert original == ORIGINAL_HEADERS


def test_payloads_are_compact_json() -> None:
    record = result_record(RESULT, topic="t", source="s")

    assert record.value == orjson.dumps(RESULT)
    assert b"\n" not in record.value
