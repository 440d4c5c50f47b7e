"""Bad records end in one failed result (when the request id is known), a dead
letter with the original bytes, headers and reason, and a partition that keeps flowing."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest

from contracts import cloudevents
from orchestrator.client import OrchestratorClient
from orchestrator.flow_files import FlowRegistry
from orchestrator.runtime.coordinator import SagaCoordinator
from orchestrator.settings import CoordinatorSettings
from tests.integration.kafka_io import committed_offsets, end_offsets, publish_raw, read_topic

pytestmark = pytest.mark.kafka

REQUEST_HEADERS = cloudevents.build_headers(
    event_id="ce-1", event_type=cloudevents.TYPE_REQUEST, source="urn:test", time_ms=0
)


def request_bytes(request_id: str, flow: str, flow_input: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {"schema_version": 1, "request_id": request_id, "flow": flow, "input": flow_input}
    )


CASES = [
    pytest.param(
        b"\xff\xfe not json", REQUEST_HEADERS, "request.undecodable", id="undecodable-bytes"
    ),
    pytest.param(b"[1, 2, 3]", REQUEST_HEADERS, "request.undecodable", id="json-but-not-object"),
    pytest.param(
        request_bytes("{rid}", "order-details", {"order_id": "o-1"}),
        [],
        "request.missing_headers",
        id="no-headers",
    ),
    pytest.param(
        request_bytes("{rid}", "order-details", {"order_id": "o-1"}),
        [(name, value) for name, value in REQUEST_HEADERS if name != cloudevents.TYPE],
        "request.missing_headers",
        id="missing-ce-type",
    ),
    pytest.param(
        orjson.dumps({"request_id": "{rid}", "flow": 7}),
        REQUEST_HEADERS,
        "request.invalid",
        id="invalid-envelope",
    ),
    pytest.param(
        request_bytes("{rid}", "no-such-flow", {}),
        REQUEST_HEADERS,
        "flow.unknown",
        id="unknown-flow",
    ),
    pytest.param(
        request_bytes("{rid}", "order-details", {"order_id": 42}),
        REQUEST_HEADERS,
        "input.invalid",
        id="invalid-input",
    ),
]


@pytest.mark.parametrize(("value", "headers", "code"), CASES)
async def test_bad_request_gets_failed_result_and_dead_letter(
    settings: CoordinatorSettings,
    demo_registry: FlowRegistry,
    value: bytes,
    headers: list[tuple[str, bytes]],
    code: str,
) -> None:
    request_id = f"bad-{time.monotonic_ns()}"
    value = value.replace(b"{rid}", request_id.encode())
    async with (
        SagaCoordinator(registry=demo_registry, settings=settings),
        OrchestratorClient(settings) as client,
    ):
        await publish_raw(
            settings.bootstrap_servers,
            settings.request_topic,
            value=value,
            key=request_id.encode(),
            headers=headers,
        )
        result = await client.wait_for(request_id, timeout_s=60)
        [dead] = await read_topic(settings.bootstrap_servers, settings.dead_letter_topic, expect=1)

    assert result["status"] == "failed"
    assert [error["code"] for error in result["errors"]] == [code]
    assert result["errors"][0]["message"]
    assert dead.value == value
    assert dead.key == request_id.encode()
    dead_headers = dict(dead.headers)
    for name, original in headers:
        assert dead_headers[name] == original
    assert dead_headers["dlq_code"] == code.encode()
    assert dead_headers["dlq_reason"] == result["errors"][0]["message"].encode()
    assert dead_headers["dlq_topic"] == settings.request_topic.encode()


async def test_partition_keeps_flowing_after_bad_records(
    settings: CoordinatorSettings, demo_registry: FlowRegistry, inventory_worker: None
) -> None:
    async with (
        SagaCoordinator(registry=demo_registry, settings=settings),
        OrchestratorClient(settings) as client,
    ):
        # Garbage with no key and no headers: nobody to answer, so it only goes
        # to the dead-letter topic. All on partition 0, before a good request.
        for value in (b"garbage", b"", b'{"half": '):
            await publish_raw(
                settings.bootstrap_servers, settings.request_topic, value=value, partition=0
            )
        good = request_bytes("good-after-bad", "order-details", {"order_id": "o-1"})
        await publish_raw(
            settings.bootstrap_servers,
            settings.request_topic,
            value=good,
            key=b"good-after-bad",
            headers=REQUEST_HEADERS,
            partition=0,
        )
        result = await client.wait_for("good-after-bad", timeout_s=60)
        dead = await read_topic(settings.bootstrap_servers, settings.dead_letter_topic, expect=3)
        ends = await end_offsets(settings.bootstrap_servers, settings.request_topic)
        committed: dict[int, int | None] = {}
        for _ in range(100):
            committed = await committed_offsets(
                settings.bootstrap_servers, settings.group_id, settings.request_topic
            )
            if committed.get(0) == ends[0]:
                break
            await asyncio.sleep(0.1)

    assert result["status"] == "completed"
    assert sorted(record.value for record in dead) == [b"", b"garbage", b'{"half": ']
    assert {dict(record.headers)["dlq_code"] for record in dead} == {b"request.missing_headers"}
    assert committed[0] == ends[0] == 4, "the offset must move past bad and good records alike"
    assert client.duplicates == []


async def test_malformed_reply_goes_to_dead_letter(
    settings: CoordinatorSettings, demo_registry: FlowRegistry
) -> None:
    async with SagaCoordinator(registry=demo_registry, settings=settings) as coordinator:
        await asyncio.wait_for(coordinator.assigned.wait(), timeout=30)
        await publish_raw(
            settings.bootstrap_servers,
            settings.reply_topic,
            value=b'{"status": "ok"}',
            key=b"r-1",
            partition=0,
        )
        [dead] = await read_topic(settings.bootstrap_servers, settings.dead_letter_topic, expect=1)

    headers = dict(dead.headers)
    assert headers["dlq_code"] == b"reply.invalid"
    assert headers["dlq_topic"] == settings.reply_topic.encode()
    assert dead.value == b'{"status": "ok"}'
