"""Request limits over the real broker: an oversized record, a 10,000-level nested
input and an overlong array are refused before any work with their own codes (a
failed result and a dead letter each), a dead letter larger than its topic allows
is still published (without the original value), and the partition moves on."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from contracts import cloudevents
from handlers.demo.http_server import HttpCall, JsonHttpServer, RouteResult
from orchestrator.client import OrchestratorClient
from orchestrator.runtime.coordinator import SagaCoordinator
from orchestrator.settings import CoordinatorSettings
from tests.integration.flows import single_call_registry
from tests.integration.kafka_io import publish_raw, read_topic

pytestmark = pytest.mark.kafka

HEADERS = cloudevents.build_headers(
    event_id="ce-1", event_type=cloudevents.TYPE_REQUEST, source="urn:test", time_ms=0
)
DLQ_MAX_BYTES = 200_000


def request(request_id: str, flow_input: Any) -> bytes:
    return orjson.dumps(
        {"schema_version": 1, "request_id": request_id, "flow": "one-call", "input": flow_input}
    )


def echo(call: HttpCall) -> RouteResult:
    return 200, {"id": call.path.rsplit("/", 1)[-1]}


async def create_small_dead_letter_topic(settings: CoordinatorSettings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        config = {"max.message.bytes": str(DLQ_MAX_BYTES)}
        response = await admin.create_topics(
            [NewTopic(settings.dead_letter_topic, settings.partitions, 1, topic_configs=config)]
        )
        assert all(code == 0 for _, code, *_ in response.topic_errors), response
    finally:
        await admin.close()


async def test_limits_refuse_before_work_and_dead_letters_are_never_lost(
    settings: CoordinatorSettings,
) -> None:
    settings = settings.replace(max_request_bytes=400_000, max_input_array_length=1_000)
    await create_small_dead_letter_topic(settings)
    deep = b'{"schema_version":1,"request_id":"deep","flow":"one-call","input":'
    deep += b"[" * 10_000 + b"]" * 10_000 + b"}"
    records = {
        # Under the broker's limit, over the coordinator's, and over the dead-letter
        # topic's: its dead letter must go out without its value.
        "huge": (request("huge", {"id": "x", "pad": "y" * 450_000}), "request.too_large"),
        "deep": (deep, "input.too_deep"),
        "long": (request("long", {"id": "x", "lines": list(range(1_001))}), "input.too_long"),
    }
    with JsonHttpServer(echo) as server:
        async with (
            SagaCoordinator(registry=single_call_registry(base_url=server.url), settings=settings),
            OrchestratorClient(settings) as client,
        ):
            for request_id, (value, _) in records.items():
                await publish_raw(
                    settings.bootstrap_servers,
                    settings.request_topic,
                    value=value,
                    key=request_id.encode(),
                    headers=list(HEADERS),
                )
            results = await asyncio.gather(
                *(client.wait_for(request_id, timeout_s=60) for request_id in records)
            )
            good = await client.run("one-call", {"id": "fine"}, timeout_s=60)
            dead = await read_topic(
                settings.bootstrap_servers, settings.dead_letter_topic, expect=3
            )

    codes = {result["request_id"]: result["errors"][0]["code"] for result in results}
    assert codes == {request_id: code for request_id, (_, code) in records.items()}
    assert good["status"] == "completed"
    letters = {letter.key.decode(): dict(letter.headers) for letter in dead if letter.key}
    assert {name: headers["dlq_code"].decode() for name, headers in letters.items()} == codes
    huge = next(letter for letter in dead if letter.key == b"huge")
    assert huge.value == b""
    assert b"was too large to keep" in dict(huge.headers)["dlq_dropped"]
    assert next(letter for letter in dead if letter.key == b"deep").value == records["deep"][0]
