"""Retries and timing over the real broker: timeouts then success, Retry-After,
a Kafka adapter that raises twice, a for_each ``concurrency`` cap, and a late
reply after the result.

Each test runs a coordinator and a client on its own topics; downstreams are real
HTTP servers on loopback or SDK workers over Kafka that record what reached them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from http import HTTPStatus

import orjson
import pytest
from pydantic import BaseModel

from contracts import cloudevents
from handlers.context import CallContext
from handlers.demo.http_server import RouteResult
from handlers.sdk import Service
from handlers.worker import build_worker
from orchestrator.settings import CoordinatorSettings
from tests.integration.kafka_io import publish_raw, read_topic
from tests.integration.saga_flows import (
    FLOW,
    Hit,
    RecordingServer,
    answer_ok,
    http_step,
    kafka_service,
    run_once,
    running,
    saga_registry,
    shop_registry,
    statuses,
    summary_of,
)

pytestmark = pytest.mark.kafka


# At module level: the SDK reads an operation's annotations, which
# `from __future__ import annotations` leaves as names to resolve here.
class Entry(BaseModel):
    id: str


class Settled(BaseModel):
    id: str
    attempt: int


async def test_two_timeouts_then_success_on_the_third_attempt(
    settings: CoordinatorSettings,
) -> None:
    def hang_twice(hit: Hit) -> RouteResult:
        if hit.nth <= 2:
            server.release.wait(timeout=10)  # far past the 300 ms each attempt has
        return answer_ok(hit)

    with RecordingServer({"quote": hang_twice}) as server:
        registry = shop_registry(
            server,
            {"quote": http_step("quote", timeout_ms=300, retry={"attempts": 3, "backoff_ms": 10})},
            result="quote",
        )
        result = await run_once(settings, registry, {"id": "q-1"}, request_id="retry-1")

    assert (result["status"], result["complete"]) == ("completed", True)
    assert result["data"] == {"id": "quote-q-1"}
    assert result["errors"] == []
    summary = summary_of(result, "quote")
    assert (summary["status"], summary["attempts"], summary["failed_calls"]) == ("ok", 3, 0)
    assert [hit.key for hit in server.hits] == ["retry-1:quote"] * 3


async def test_a_retry_waits_for_retry_after(settings: CoordinatorSettings) -> None:
    def busy_once(hit: Hit) -> RouteResult:
        if hit.nth == 1:
            return HTTPStatus.SERVICE_UNAVAILABLE, {"error": "busy"}, {"Retry-After": "1"}
        return answer_ok(hit)

    with RecordingServer({"quote": busy_once}) as server:
        registry = shop_registry(
            server,
            {"quote": http_step("quote", retry={"attempts": 2, "backoff_ms": 10})},
            result="quote",
        )
        result = await run_once(settings, registry, {"id": "q-1"}, request_id="after-1")

    assert result["status"] == "completed"
    assert result["data"] == {"id": "quote-q-1"}
    assert summary_of(result, "quote")["attempts"] == 2
    first, second = server.hits
    # backoff_ms alone would retry within 10 ms; Retry-After: 1 holds it a second.
    assert second.arrived - first.arrived >= 0.95
    assert first.key == second.key == "after-1:quote"


async def test_for_each_concurrency_caps_the_calls_in_flight(
    settings: CoordinatorSettings,
) -> None:
    def slowish(hit: Hit) -> RouteResult:
        time.sleep(0.15)
        return answer_ok(hit)

    items = [f"p-{n}" for n in range(6)]
    with RecordingServer({"fetch": slowish}) as server:
        registry = shop_registry(
            server,
            {"fetch": http_step("fetch", reads="item", for_each="input.items", concurrency=2)},
            result="fetch",
        )
        result = await run_once(settings, registry, {"items": items}, request_id="cap-1")

    assert result["status"] == "completed"
    assert result["data"] == [{"id": f"fetch-{item}"} for item in items]
    summary = summary_of(result, "fetch")
    assert (summary["status"], summary["calls"], summary["attempts"]) == ("ok", 6, 6)
    assert sorted(hit.path for hit in server.hits) == [f"/fetch/{item}" for item in items]
    assert sorted(hit.key or "" for hit in server.hits) == [f"cap-1:fetch#{n}" for n in range(6)]
    assert server.max_in_flight == 2, "two at a time: never more, and the cap is used"


async def test_a_kafka_adapter_step_is_retried_with_one_idempotency_key(
    settings: CoordinatorSettings, topic_prefix: str
) -> None:
    command_topic = f"{topic_prefix}.payments.commands"
    payments = Service("payments", command_topic=command_topic)
    seen: list[tuple[int, str, str]] = []

    @payments.operation
    async def settle(payment: Entry, ctx: CallContext) -> Settled:
        seen.append((ctx.attempt, ctx.call, ctx.idempotency_key))
        if ctx.attempt < 3:
            raise RuntimeError(f"ledger offline (attempt {ctx.attempt})")
        return Settled(id=payment.id, attempt=ctx.attempt)

    registry = saga_registry(
        {"payments": kafka_service(command_topic)},
        {
            "settle": {
                "service": "payments",
                "operation": "settle",
                "input": {"id": "input.id"},
                "retry": {"attempts": 3, "backoff_ms": 10},
            }
        },
        result="settle",
    )
    worker, _ = build_worker(
        payments,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=f"{topic_prefix}.payments",
        dead_letter_topic=settings.dead_letter_topic,
        reply_topics=[settings.reply_topic],
    )
    await worker.start()
    try:
        result = await run_once(settings, registry, {"id": "pay-1"}, request_id="kretry-1")
    finally:
        await worker.stop()

    assert result["status"] == "completed"
    assert result["data"] == {"id": "pay-1", "attempt": 3}
    assert result["errors"] == []
    assert summary_of(result, "settle")["attempts"] == 3
    assert seen == [(attempt, "settle", "kretry-1:settle") for attempt in (1, 2, 3)]


async def test_a_late_reply_after_the_result_changes_nothing(
    settings: CoordinatorSettings, topic_prefix: str
) -> None:
    command_topic = f"{topic_prefix}.ledger.commands"
    registry = saga_registry(
        {"ledger": kafka_service(command_topic)},
        {"post": {"service": "ledger", "operation": "post", "input": {"id": "input.id"}}},
        result="post",
        defaults={"timeout_ms": 500},
    )
    ledger = Service("ledger", command_topic=command_topic)
    ran: list[str] = []

    @ledger.operation
    async def post(entry: Entry) -> Entry:
        ran.append(entry.id)
        return entry

    worker, _ = build_worker(
        ledger,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=f"{topic_prefix}.ledger",
        dead_letter_topic=settings.dead_letter_topic,
        reply_topics=[settings.reply_topic],
    )
    async with running(settings, registry) as (coordinator, client):
        # No adapter runs yet: the step times out and the saga answers.
        result = await client.run(FLOW, {"id": "e-1"}, request_id="late-1", timeout_s=30)
        assert result["status"] == "failed"
        assert statuses(result) == {"post": "timed_out"}
        # The adapter comes up and answers the command late (it expired unrun) ...
        await worker.start()
        try:
            await _wait_for(lambda: coordinator.ignored_replies.total() >= 1)
        finally:
            await worker.stop()
        # ... and a reply saying ok arrives later still.
        [command] = await read_topic(settings.bootstrap_servers, command_topic, expect=1)
        correlation = orjson.loads(command.value)["correlation_id"]
        await publish_raw(
            settings.bootstrap_servers,
            settings.reply_topic,
            value=orjson.dumps(
                {
                    "request_id": "late-1",
                    "correlation_id": correlation,
                    "status": "ok",
                    "output": {"id": "e-1"},
                }
            ),
            key=b"late-1",
            headers=cloudevents.build_headers(
                event_id=f"{correlation}:reply",
                event_type=cloudevents.TYPE_STEP_REPLY,
                source="urn:test",
                time_ms=0,
                extensions=((cloudevents.CORRELATION_ID, correlation),),
            ),
        )
        await _wait_for(lambda: coordinator.ignored_replies.total() >= 2)
        results = await read_topic(
            settings.bootstrap_servers, settings.result_topic, expect=1, settle_s=1.0
        )

    assert result["errors"][0]["code"] == "step.timeout"
    assert correlation == "late-1:post:1"
    assert ran == [], "a command past its deadline is not run"
    assert len(results) == 1, "a late reply never causes a second result"
    assert orjson.loads(results[0].value)["status"] == "failed"
    assert coordinator.ignored_replies == {"unknown_saga": 2}


async def _wait_for(condition: Callable[[], bool], *, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        await asyncio.sleep(0.05)
