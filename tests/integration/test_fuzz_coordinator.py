"""Fuzzing the coordinator over the real broker: 10,000 hostile request records
(random bytes, wrong and missing headers, wrong types, huge strings, 10,000-level
nesting, invalid UTF-8) and 1,000 hostile replies (malformed, or forged with
unknown, old and foreign correlation ids), drawn by hypothesis, with good
requests between them. No crash, every bad request dead-lettered once with a
reason, every forged reply dead-lettered or ignored (never taken), one completed
result per good request, and committed offsets at the end of both topics."""

from __future__ import annotations

import asyncio
import collections
import uuid

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from orchestrator.client import OrchestratorClient
from orchestrator.runtime.coordinator import SagaCoordinator
from orchestrator.settings import CoordinatorSettings
from tests.integration.durability_io import (
    WAIT_S,
    publish_requests,
    request_headers,
    request_value,
    started,
    wait_until_committed,
)
from tests.integration.fuzz_records import (
    Record,
    draw_many,
    forged_reply,
    hostile_replies,
    hostile_requests,
)
from tests.integration.kafka_io import committed_offsets, end_offsets, read_topic
from tests.integration.saga_flows import FLOW, RecordingServer, http_step, shop_registry

pytestmark = pytest.mark.kafka

DRAWN = 2_500
COPIES = 4
"""Each drawn record is published this often (hypothesis draws ~2 ms a record;
a copy at another offset is another record to refuse, and keeps the test fast)."""
REPLIES = 1_000
GOOD_EVERY = 100
INPUT_SCHEMA = {
    "type": "object",
    "required": ["id"],
    "properties": {"id": {"type": "string", "maxLength": 100}},
    "additionalProperties": False,
}
"""So that every hostile input is refused (without it, a deep or huge input is valid)."""


async def test_hostile_records_are_dead_lettered_and_good_ones_complete(
    settings: CoordinatorSettings,
) -> None:
    old_ids = [f"old-{n}" for n in range(5)]
    requests = draw_many(hostile_requests(FLOW), count=DRAWN, batch=10) * COPIES
    replies = draw_many(hostile_replies(old_ids), count=REPLIES, batch=10)
    with RecordingServer() as server:
        registry = shop_registry(
            server, {"a": http_step("a")}, result={"a": "a.id"}, input_schema=INPUT_SCHEMA
        )
        async with (
            SagaCoordinator(registry=registry, settings=settings) as coordinator,
            OrchestratorClient(settings) as client,
        ):
            await started(coordinator)
            await publish_requests(settings, [(rid, {"id": rid}) for rid in old_ids])
            for rid in old_ids:
                assert (await client.wait_for(rid, timeout_s=WAIT_S))["status"] == "completed"

            good_ids = await _publish_interleaved(settings, requests, replies)

            answered = [await client.wait_for(rid, timeout_s=WAIT_S * 2) for rid in good_ids]
            await wait_until_committed(settings)
            await _wait_until_committed(settings, settings.reply_topic)
            crashed = coordinator.failed.done()
            ignored = sum(coordinator.ignored_replies.values())

        dead = await read_topic(
            settings.bootstrap_servers,
            settings.dead_letter_topic,
            expect=len(requests),
            timeout_s=WAIT_S,
            settle_s=1.0,
        )
        results = await read_topic(
            settings.bootstrap_servers,
            settings.result_topic,
            expect=len(good_ids),
            timeout_s=WAIT_S,
            settle_s=1.0,
        )

    assert not crashed, "the coordinator must survive every record"
    by_topic: dict[str, list[dict[str, bytes]]] = collections.defaultdict(list)
    for record in dead:
        headers = dict(record.headers)
        by_topic[headers["dlq_topic"].decode()].append(headers)
    refused = by_topic[settings.request_topic]
    assert len(refused) == len(requests), "every hostile request is dead-lettered once"
    assert len({(h["dlq_partition"], h["dlq_offset"]) for h in refused}) == len(requests)
    assert all(h["dlq_code"] and h["dlq_reason"] for h in refused), "each with a code and reason"

    malformed = sum(1 for _, well_formed in replies if not well_formed)
    dead_replies = by_topic[settings.reply_topic]
    assert all(h["dlq_code"] and h["dlq_reason"] for h in dead_replies)
    assert len(dead_replies) >= malformed, "every malformed reply is dead-lettered"
    forged = len(replies) + len(good_ids)
    assert len(dead_replies) + ignored >= forged, "a forged reply is refused or ignored"

    assert [result["status"] for result in answered] == ["completed"] * len(good_ids)
    assert all(
        result["data"] == {"a": f"a-{result['request_id'].rsplit('-', 1)[1]}"}
        for result in answered
    ), "no forged output reached a result"
    per_id = collections.Counter(orjson.loads(r.value)["request_id"] for r in results)
    assert all(per_id[rid] == 1 for rid in good_ids + old_ids), "exactly one result each"
    assert len(server.hits) == len(good_ids) + len(old_ids), "hostile records call nobody"


async def _publish_interleaved(
    settings: CoordinatorSettings,
    requests: list[Record],
    replies: list[tuple[Record, bool]],
) -> list[str]:
    """Publish with one producer: the hostile requests with a good one every
    ``GOOD_EVERY`` (and a forged reply to it), and the hostile replies between them.
    Returns the good request ids."""
    run = uuid.uuid4().hex[:8]
    good_ids: list[str] = []
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        acks="all",
        linger_ms=20,
        max_request_size=4_000_000,
    )
    await producer.start()
    try:
        deliveries = []
        for n, (key, value, headers) in enumerate(requests):
            if n % GOOD_EVERY == 0:
                rid = f"good-{run}-{n}"
                good_ids.append(rid)
                deliveries.append(
                    await producer.send(
                        settings.request_topic,
                        value=request_value(rid, {"id": str(n)}),
                        key=rid.encode(),
                        headers=request_headers(rid),
                    )
                )
                # Forged at once: the saga may still run (unauthenticated) or
                # be over (ignored); either way it must not be the answer.
                deliveries.append(
                    await producer.send(
                        settings.reply_topic,
                        value=forged_reply(f"{rid}:a:1", rid),
                        key=rid.encode(),
                    )
                )
            deliveries.append(
                await producer.send(settings.request_topic, value=value, key=key, headers=headers)
            )
            if n < len(replies):
                (r_key, r_value, r_headers), _ = replies[n]
                deliveries.append(
                    await producer.send(
                        settings.reply_topic, value=r_value, key=r_key, headers=r_headers
                    )
                )
        await producer.flush()
        await asyncio.gather(*deliveries)
    finally:
        await producer.stop()

    return good_ids


async def _wait_until_committed(settings: CoordinatorSettings, topic: str) -> dict[int, int]:
    ends = await end_offsets(settings.bootstrap_servers, topic)
    committed: dict[int, int] = {}
    for _ in range(int(WAIT_S * 10)):
        found = await committed_offsets(settings.bootstrap_servers, settings.group_id, topic)
        committed = {partition: offset or 0 for partition, offset in found.items()}
        if committed == ends:
            break
        await asyncio.sleep(0.1)
    assert committed == ends, f"the consumer lag on {topic} must return to zero"
    return committed
