"""The ingress's server span is the root of the request's trace, and the request
event is published with its ``traceparent`` (a fake client records the headers the
real one would add)."""

from __future__ import annotations

from typing import Any

import httpx
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from handlers.tracing import current_trace_headers
from orchestrator.ingress import IngressConfig, create_app
from orchestrator.ingress.tracing import tracing_middleware
from tests.orchestrator.ingress.test_app import FakeClient, registry


class RecordingClient(FakeClient):
    """Records the trace headers the real client would put on each request event."""

    def __init__(self) -> None:
        super().__init__(up=True)
        self.headers: list[dict[str, str]] = []

    async def submit(
        self, flow: str, input: dict[str, Any], *, request_id: str | None = None
    ) -> str:
        self.headers.append(current_trace_headers())
        return await super().submit(flow, input, request_id=request_id)


async def test_the_ingress_span_is_the_root_and_its_context_reaches_the_request() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    client = RecordingClient()
    app = create_app(
        registry=registry(),
        client=client,
        config=IngressConfig(wait_ms=10),
        middleware=tracing_middleware(provider),
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://ingress"
    ) as http:
        await http.post("/flows/f", json={})
        await http.get("/healthz")

    spans = exporter.get_finished_spans()
    assert len(spans) == 1, [span.name for span in spans]  # the probe made none
    server = spans[0]
    assert server.kind is SpanKind.SERVER
    assert server.parent is None
    assert server.context is not None
    [headers] = client.headers
    assert headers["traceparent"].split("-")[1:3] == [
        f"{server.context.trace_id:032x}",
        f"{server.context.span_id:016x}",
    ]


def test_tracing_off_adds_no_middleware() -> None:
    assert tracing_middleware() == []


def test_only_the_probe_and_scrape_paths_are_excluded() -> None:
    from opentelemetry.util.http import parse_excluded_urls

    from orchestrator.ingress.tracing import EXCLUDED_URLS

    excluded = parse_excluded_urls(EXCLUDED_URLS)
    for path in ("/healthz", "/readyz", "/metrics"):
        assert excluded.url_disabled(f"http://ingress:8080{path}"), path
    for path in (
        "/flows/user-metrics",
        "/requests/healthz-1",
        "/requests/a-readyz",
        "/healthz/x",
        "/metrics2",
        "/flows/healthz",
    ):
        assert not excluded.url_disabled(f"http://ingress:8080{path}"), path
