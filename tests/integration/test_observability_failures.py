"""Observability never costs a result, over the real broker: with a span processor
that raises on every span start or end, and metrics whose every hook raises, each
saga still ends with exactly one result and its request offset is committed."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider

from contracts import cloudevents
from handlers.tracing import TRACEPARENT
from orchestrator.runtime.coordinator import SagaCoordinator
from orchestrator.settings import CoordinatorSettings
from tests.integration.kafka_io import committed_offsets, end_offsets, publish_raw, read_topic
from tests.integration.saga_flows import (
    FLOW,
    RESULT_TIMEOUT_S,
    RecordingServer,
    http_step,
    shop_registry,
    undo,
)

pytestmark = pytest.mark.kafka

REQUESTS = 6


class Raising(SpanProcessor):
    """Raises where asked: on every span's start, or on every span's end."""

    def __init__(self, where: str) -> None:
        self.where = where

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if self.where == "start":
            raise RuntimeError("span processor fails on start")

    def on_end(self, span: ReadableSpan) -> None:
        if self.where == "end":
            raise RuntimeError("span processor fails on end")


class Broken:
    """A Prometheus metric whose every use raises."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"metric fails: {name}")


def break_metrics(coordinator: SagaCoordinator) -> None:
    metrics = coordinator.metrics
    for name in (
        "_started",
        "_finished",
        "_saga_duration",
        "_call_duration",
        "_call_errors",
        "_retries",
        "_compensations",
        "_dead_letters",
        "_ignored",
        "consumer_lag",
        "restored",
    ):
        setattr(metrics, name, Broken())


async def publish_request(settings: CoordinatorSettings, request_id: str, order: str) -> None:
    headers = cloudevents.build_headers(
        event_id=request_id,
        event_type=cloudevents.TYPE_REQUEST,
        source="urn:test",
        time_ms=int(time.time() * 1000),
    )
    # A traceparent too, so the saga's span continues it (when spans can start).
    headers.append((TRACEPARENT, b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"))
    await publish_raw(
        settings.bootstrap_servers,
        settings.request_topic,
        value=orjson.dumps({"request_id": request_id, "flow": FLOW, "input": {"id": order}}),
        key=request_id.encode(),
        headers=headers,
    )


@pytest.mark.parametrize("fails_on", ["start", "end"])
async def test_failing_tracing_and_metrics_cost_no_result(
    settings: CoordinatorSettings, fails_on: str
) -> None:
    provider = TracerProvider()
    provider.add_span_processor(Raising(fails_on))
    with RecordingServer({}) as server:
        registry = shop_registry(
            server,
            {
                "reserve": http_step("reserve", compensate=undo("release", step="reserve")),
                "charge": http_step("charge", reads="reserve.id"),
            },
        )
        coordinator = SagaCoordinator(
            registry=registry, settings=settings, tracer_provider=provider
        )
        break_metrics(coordinator)
        async with coordinator:
            for number in range(REQUESTS):
                await publish_request(settings, f"r-{fails_on}-{number}", f"o-{number}")
            results = await read_topic(
                settings.bootstrap_servers,
                settings.result_topic,
                expect=REQUESTS,
                timeout_s=RESULT_TIMEOUT_S,
                settle_s=0.5,
            )
            ends = await end_offsets(settings.bootstrap_servers, settings.request_topic)
            deadline = time.monotonic() + RESULT_TIMEOUT_S
            while True:
                committed = await committed_offsets(
                    settings.bootstrap_servers, settings.group_id, settings.request_topic
                )
                if {k: v or 0 for k, v in committed.items()} == ends:
                    break
                assert time.monotonic() < deadline, (committed, ends)
                await asyncio.sleep(0.2)
            assert coordinator.in_flight == 0
            assert not coordinator.failed.done()
    answered = sorted(orjson.loads(record.value)["request_id"] for record in results)
    assert answered == sorted(f"r-{fails_on}-{number}" for number in range(REQUESTS))
    assert {orjson.loads(record.value)["status"] for record in results} == {"completed"}
