"""A saga's spans: an untraced request starts a trace of its own (never the span
current at the time), and a failing span processor costs the saga its trace only."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from orchestrator.runtime.tracing import SagaTracer
from orchestrator.saga import CallReplied, DispatchCall
from orchestrator.settings import CoordinatorSettings


def traced() -> tuple[SagaTracer, InMemorySpanExporter, TracerProvider]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return (
        SagaTracer(provider.get_tracer("test"), settings=CoordinatorSettings()),
        exporter,
        provider,
    )


@pytest.mark.parametrize("resumed", [False, True])
def test_an_untraced_saga_is_a_root_span_whatever_is_current(resumed: bool) -> None:
    tracer, exporter, provider = traced()
    with provider.get_tracer("test").start_as_current_span("unrelated"):
        if resumed:
            spans = tracer.resumed(flow="f", request_id="r", partition=0, traceparent=None)
        else:
            spans = tracer.request(flow="f", request_id="r", headers={}, partition=0, offset=1)
    assert spans is not None
    spans.end(None)
    by_name = {span.name: span for span in exporter.get_finished_spans()}
    saga = by_name["saga f"]
    assert saga.parent is None
    assert saga.context is not None
    unrelated = by_name["unrelated"].context
    assert unrelated is not None
    assert saga.context.trace_id != unrelated.trace_id


class Raising(SpanProcessor):
    def on_start(self, span: Span, parent_context: Any = None) -> None:
        raise RuntimeError("processor on_start")

    def on_end(self, span: ReadableSpan) -> None:
        raise RuntimeError("processor on_end")


def action() -> DispatchCall:
    return DispatchCall(
        request_id="r",
        flow="f",
        step="s",
        call="s",
        attempt=1,
        service="svc",
        operation="op",
        input={},
        deadline_ms=10,
        correlation_id="r/s/1",
        idempotency_key="r:s",
    )


def test_a_failing_span_processor_never_raises_and_drops_the_trace() -> None:
    provider = TracerProvider()
    provider.add_span_processor(Raising())
    tracer = SagaTracer(provider.get_tracer("test"), settings=CoordinatorSettings())
    assert tracer.request(flow="f", request_id="r", headers={}, partition=0, offset=1) is None
    assert tracer.resumed(flow="f", request_id="r", partition=0, traceparent=None) is None


def test_a_span_method_that_fails_drops_the_sagas_trace() -> None:
    tracer, exporter, provider = traced()
    spans = tracer.request(flow="f", request_id="r", headers={}, partition=0, offset=1)
    assert spans is not None
    provider.add_span_processor(Raising())  # from now on every span start raises
    assert spans.call_dispatched(action()) is None
    assert spans.dropped
    spans.call_ended(CallReplied(call="s", attempt=1, status="ok", at_ms=1, output={}))
    assert (
        spans.result(
            {"request_id": "r", "status": "completed", "complete": True}, topic="t", partition=0
        )
        == []
    )
    spans.result_sent()
    spans.end("revoked")
    assert exporter.get_finished_spans() == ()  # dropped: nothing more is attempted
