"""One trace per request, over the real broker: the client's span, the saga's, a
span per step call with the HTTP client span whose ``traceparent`` reached the
downstream, the step command's producer span with the SDK worker's spans under
it, a compensation, and the result's producer span.

The SDK is configured here (an in-memory exporter on a provider of the test's
own), never globally: other tests keep tracing off.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from http import HTTPStatus
from typing import NoReturn, TypeVar

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NoOpTracer, ProxyTracer, SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic import BaseModel

from contracts import cloudevents
from contracts.base import SCHEMA_VERSION
from handlers.demo.http_server import RouteResult
from handlers.sdk import Service
from handlers.worker import build_worker
from orchestrator.client import OrchestratorClient
from orchestrator.runtime.coordinator import SagaCoordinator
from orchestrator.settings import CoordinatorSettings
from tests.integration.kafka_io import read_topic
from tests.integration.saga_flows import (
    FLOW,
    RESULT_TIMEOUT_S,
    SHOP,
    Hit,
    RecordingServer,
    answer_ok,
    http_service,
    http_step,
    kafka_service,
    saga_registry,
    undo,
)

pytestmark = pytest.mark.kafka


class Item(BaseModel):
    id: str


def ship(hit: Hit) -> RouteResult:
    if "bad" in hit.path:
        return HTTPStatus.CONFLICT, {"error": "no courier"}
    return answer_ok(hit)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


@pytest.fixture
async def stock_worker(
    settings: CoordinatorSettings, topic_prefix: str, provider: TracerProvider
) -> AsyncIterator[str]:
    """A remote SDK adapter ``stock.check`` on this test's command topic; yields the topic."""
    topic = f"{topic_prefix}.stock.commands"
    stock = Service("stock", command_topic=topic)

    @stock.operation("check")
    async def check(item: Item) -> Item:
        return Item(id=f"stock-{item.id}")

    broker, _ = build_worker(
        stock,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=f"{topic_prefix}.stock",
        dead_letter_topic=settings.dead_letter_topic,
        tracer_provider=provider,
        reply_topics=[settings.reply_topic],
    )
    await broker.start()
    try:
        yield topic
    finally:
        await broker.stop()


T = TypeVar("T")


def one(items: Sequence[T], match: Callable[[T], bool]) -> T:
    found = [item for item in items if match(item)]
    assert len(found) == 1, found
    return found[0]


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def children(spans: Sequence[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    return [span for span in spans if parent_of(span) == parent.context.span_id]


async def finished_sagas(exporter: InMemorySpanExporter, count: int) -> list[ReadableSpan]:
    """Wait for ``count`` saga spans to end (they end once their result is acknowledged)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RESULT_TIMEOUT_S
    while True:
        spans = list(exporter.get_finished_spans())
        if sum(span.name == f"saga {FLOW}" for span in spans) >= count or loop.time() > deadline:
            return spans
        await asyncio.sleep(0.05)


async def test_one_trace_per_request_across_http_kafka_and_the_worker(
    settings: CoordinatorSettings,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    stock_worker: str,
) -> None:
    with RecordingServer({"ship": ship}) as server:
        registry = saga_registry(
            {
                SHOP: http_service(server.url, ["reserve", "release", "ship"]),
                "stock": kafka_service(stock_worker),
            },
            {
                "reserve": http_step("reserve", compensate=undo("release", step="reserve")),
                "stock": {"service": "stock", "operation": "check", "input": {"id": "reserve.id"}},
                "ship": http_step("ship", reads="stock.id"),
            },
            result="stock",
        )
        tracer = provider.get_tracer("test-client")
        async with (
            SagaCoordinator(
                registry=registry, settings=settings, tracer_provider=provider
            ) as coordinator,
            OrchestratorClient(settings) as client,
        ):
            assert coordinator.assigned is not None
            with tracer.start_as_current_span("checkout") as client_span:
                good = await client.run(FLOW, {"id": "o-1"}, request_id="t-ok", timeout=30)
            bad = await client.run(FLOW, {"id": "bad-1"}, request_id="t-bad", timeout=30)
            spans = await finished_sagas(exporter, 2)

    assert (good["status"], bad["status"]) == ("completed", "failed")
    trace_id = client_span.get_span_context().trace_id
    ours = [
        span for span in spans if span.context is not None and span.context.trace_id == trace_id
    ]

    # The saga continues the client's trace; steps are its children.
    saga = one(ours, lambda span: span.name == f"saga {FLOW}")
    assert parent_of(saga) == client_span.get_span_context().span_id
    assert saga.kind is SpanKind.CONSUMER
    assert saga.attributes is not None
    assert saga.attributes["messaging.system"] == "kafka"
    assert saga.attributes["messaging.destination.name"] == settings.request_topic
    assert saga.attributes["messaging.kafka.message.key"] == "t-ok"
    steps = {span.name: span for span in children(ours, saga) if span.name.startswith("step ")}
    assert sorted(steps) == ["step reserve", "step ship", "step stock"]

    # HTTP: a client span under the step, whose context the downstream received.
    http = one(children(ours, steps["step reserve"]), lambda span: span.kind is SpanKind.CLIENT)
    assert http.context is not None
    hit = one(server.of("reserve"), lambda hit: hit.path.endswith("/o-1"))
    assert hit.traceparent is not None
    assert hit.traceparent.split("-")[1:3] == [f"{trace_id:032x}", f"{http.context.span_id:016x}"]

    # Kafka: the command's producer span, the worker's consumer span under it, its
    # reply's producer span, and the coordinator's reply span under the step.
    send = one(children(ours, steps["step stock"]), lambda span: span.kind is SpanKind.PRODUCER)
    assert send.name == f"send {stock_worker}"
    worker = one(ours, lambda span: span.name == f"process {stock_worker}")
    assert worker.kind is SpanKind.CONSUMER
    assert parent_of(worker) == span_id(send)
    reply = one(children(ours, worker), lambda span: span.kind is SpanKind.PRODUCER)
    assert reply.name == f"send {settings.reply_topic}"
    received = one(children(ours, steps["step stock"]), lambda span: span.kind is SpanKind.CONSUMER)
    assert [link.context.span_id for link in received.links] == [span_id(reply)]

    # The result's producer span closes the saga.
    result = one(children(ours, saga), lambda span: span.kind is SpanKind.PRODUCER)
    assert result.name == f"send {settings.result_topic}"
    assert result.attributes is not None
    assert result.attributes["messaging.kafka.message.key"] == "t-ok"
    # ...and its context travels with the result event, for the result's readers.
    records = await read_topic(settings.bootstrap_servers, settings.result_topic, expect=2)
    headers = dict(one(records, lambda record: record.key == b"t-ok").headers)
    assert headers["traceparent"].decode().split("-")[1:3] == [
        f"{trace_id:032x}",
        f"{span_id(result):016x}",
    ]

    assert_compensated_saga_traced(spans)


def assert_compensated_saga_traced(spans: Sequence[ReadableSpan]) -> None:
    """The failed saga is a trace of its own (no client span): a compensation span
    undoes the reservation, and the saga's status is an error."""
    failed = one(
        spans,
        lambda span: (
            span.name == f"saga {FLOW}"
            and span.attributes is not None
            and span.attributes["orchestrator.request_id"] == "t-bad"
        ),
    )
    assert failed.parent is None
    assert failed.status.status_code is StatusCode.ERROR
    compensation = one(children(spans, failed), lambda span: span.name == "compensate reserve")
    assert one(children(spans, compensation), lambda span: span.kind is SpanKind.CLIENT)
    ship_step = one(children(spans, failed), lambda span: span.name == "step ship")
    assert ship_step.status.status_code is StatusCode.ERROR
    assert failed.context is not None
    assert {span.context.trace_id for span in children(spans, failed) if span.context} == {
        failed.context.trace_id
    }


UPSTREAM_TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def send_request(settings: CoordinatorSettings, request_id: str, *, traceparent: str) -> None:
    """A request event as a traced upstream would publish it."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    try:
        headers = cloudevents.build_headers(
            event_id=request_id,
            event_type=cloudevents.TYPE_REQUEST,
            source="urn:test",
            time_ms=time.time_ns() // 1_000_000,
        )
        payload = {
            "schema_version": SCHEMA_VERSION,
            "request_id": request_id,
            "flow": FLOW,
            "input": {"id": request_id},
        }
        await producer.send_and_wait(
            settings.request_topic,
            orjson.dumps(payload),
            key=request_id.encode(),
            headers=[*headers, ("traceparent", traceparent.encode())],
        )
    finally:
        await producer.stop()


async def test_tracing_off_does_no_tracing_work_at_all(
    settings: CoordinatorSettings, topic_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No provider installed: the coordinator and the worker make no span, attach no
    context and parse or write no trace header (each of those would raise here)."""

    def forbidden(*_: object, **__: object) -> NoReturn:
        raise AssertionError("tracing work with tracing off")

    for owner, name in [
        (ProxyTracer, "start_span"),
        (ProxyTracer, "start_as_current_span"),
        (NoOpTracer, "start_span"),
        (NoOpTracer, "start_as_current_span"),
        (TraceContextTextMapPropagator, "extract"),
        (TraceContextTextMapPropagator, "inject"),
    ]:
        monkeypatch.setattr(owner, name, forbidden)
    monkeypatch.setattr(otel_context, "attach", forbidden)
    topic = f"{topic_prefix}.stock.commands"
    stock = Service("stock", command_topic=topic)

    @stock.operation("check")
    async def check(item: Item) -> Item:
        return Item(id=f"stock-{item.id}")

    worker, _ = build_worker(
        stock,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=f"{topic_prefix}.stock",
        dead_letter_topic=settings.dead_letter_topic,
        reply_topics=[settings.reply_topic],
    )
    with RecordingServer() as server:
        registry = saga_registry(
            {SHOP: http_service(server.url, ["reserve"]), "stock": kafka_service(topic)},
            {
                "reserve": http_step("reserve"),
                "stock": {"service": "stock", "operation": "check", "input": {"id": "reserve.id"}},
            },
            result="stock",
        )
        await worker.start()
        try:
            async with (
                SagaCoordinator(registry=registry, settings=settings) as coordinator,
                OrchestratorClient(settings) as client,
            ):
                # From a traced upstream: the header is there, and must not be read.
                await send_request(settings, "o-1", traceparent=UPSTREAM_TRACEPARENT)
                result = await client.wait_for("o-1", timeout=RESULT_TIMEOUT_S)
                assert coordinator._tracer is None
        finally:
            await worker.stop()
    assert (result["status"], result["data"]) == ("completed", {"id": "stock-reserve-o-1"})
    assert [hit.traceparent for hit in server.hits] == [None]


async def test_a_saga_resumed_by_the_next_instance_stays_in_the_request_trace(
    settings: CoordinatorSettings, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    gate = threading.Event()
    arrived = asyncio.Event()
    loop = asyncio.get_running_loop()

    def charge(hit: Hit) -> RouteResult:
        if hit.nth == 1:
            loop.call_soon_threadsafe(arrived.set)
            gate.wait(RESULT_TIMEOUT_S)  # hangs until the first instance has stopped
        return answer_ok(hit)

    with RecordingServer({"charge": charge}) as server:
        registry = saga_registry(
            {SHOP: http_service(server.url, ["reserve", "charge"])},
            {"reserve": http_step("reserve"), "charge": http_step("charge", reads="reserve.id")},
        )
        tracer = provider.get_tracer("test-client")
        first = SagaCoordinator(registry=registry, settings=settings, tracer_provider=provider)
        await first.start()
        try:
            async with OrchestratorClient(settings) as client:
                try:
                    with tracer.start_as_current_span("checkout") as client_span:
                        await client.submit(FLOW, {"id": "o-9"}, request_id="t-resume")
                    await asyncio.wait_for(arrived.wait(), RESULT_TIMEOUT_S)
                finally:
                    await first.stop()
                async with SagaCoordinator(
                    registry=registry, settings=settings, tracer_provider=provider
                ):
                    result = await client.wait_for("t-resume", timeout=RESULT_TIMEOUT_S)
                    spans = await finished_sagas(exporter, 2)
        finally:
            gate.set()

    assert result["status"] == "completed"
    sagas = [span for span in spans if span.name == f"saga {FLOW}"]
    assert len(sagas) == 2
    context = client_span.get_span_context()
    assert {(span.context.trace_id, parent_of(span)) for span in sagas if span.context} == {
        (context.trace_id, context.span_id)
    }
    handed, resumed = sorted(sagas, key=lambda span: span.start_time or 0)
    assert handed.attributes is not None
    assert handed.attributes["orchestrator.handed_over"] == "stopped"
    assert resumed.attributes is not None
    assert resumed.attributes["orchestrator.resumed"] is True
    # Only what was left runs again: the charge, then the result.
    assert sorted(span.name for span in children(spans, resumed)) == [
        f"send {settings.result_topic}",
        "step charge",
    ]
