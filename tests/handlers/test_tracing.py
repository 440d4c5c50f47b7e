"""Tracing set-up from the standard OTEL_* variables, and trace context in headers."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import use_span

from handlers.errors import AdapterSetupError
from handlers.tracing import (
    configure_from_env,
    context_from,
    current_trace_headers,
    kafka_attributes,
    trace_headers,
    tracer_of,
)


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Providers configure_from_env would install globally (caught, so tests stay off)."""
    providers: list[Any] = []
    monkeypatch.setattr(trace, "set_tracer_provider", providers.append)
    return providers


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"OTEL_TRACES_EXPORTER": "none"},
        {"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"},
        {"OTEL_SERVICE_NAME": "x"},
    ],
)
def test_tracing_is_off_unless_an_exporter_is_configured(
    environ: dict[str, str], installed: list[Any]
) -> None:
    assert configure_from_env("orchestrator-coordinator", environ) is None
    assert installed == []
    assert tracer_of() is None  # the global provider is the default proxy: off


@pytest.mark.parametrize(
    "environ",
    [
        {"OTEL_TRACES_EXPORTER": "console"},
        {"OTEL_TRACES_EXPORTER": "otlp,console"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
    ],
)
def test_an_exporter_turns_it_on(environ: dict[str, str], installed: list[Any]) -> None:
    provider = configure_from_env("orchestrator-coordinator", environ)
    try:
        assert installed == [provider]
        assert isinstance(provider, TracerProvider)
        assert provider.resource.attributes["service.name"] == "orchestrator-coordinator"
        assert tracer_of(provider) is not None
    finally:
        assert provider is not None
        provider.shutdown()


def test_an_unknown_exporter_is_one_sentence(installed: list[Any]) -> None:
    with pytest.raises(AdapterSetupError, match=r"zipkin.*otlp"):
        configure_from_env("x", {"OTEL_TRACES_EXPORTER": "zipkin"})
    assert installed == []


@pytest.mark.parametrize(
    "environ",
    [
        {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
        {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"},
        {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json",
        },
    ],
)
def test_an_otlp_protocol_not_installed_is_one_sentence(
    environ: dict[str, str], installed: list[Any]
) -> None:
    with pytest.raises(AdapterSetupError, match=r"only the http/protobuf OTLP exporter"):
        configure_from_env("x", environ)
    assert installed == []


def test_http_protobuf_is_accepted(installed: list[Any]) -> None:
    provider = configure_from_env(
        "x",
        {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",  # the traces-specific one wins
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        },
    )
    assert provider is not None
    provider.shutdown()


def test_trace_context_round_trips_through_headers() -> None:
    provider = TracerProvider()
    assert current_trace_headers() == {}  # no current span: no header
    span = provider.get_tracer("t").start_span("x")
    with use_span(span, end_on_exit=True):
        headers = current_trace_headers()
        assert set(headers) == {"traceparent"}
    context = context_from(headers)
    assert context is not None
    assert trace.get_current_span(context).get_span_context().span_id == (
        span.get_span_context().span_id
    )
    assert trace_headers(context) == headers
    assert context_from({"ce_id": "1"}) is None


def test_kafka_attributes_follow_the_messaging_conventions() -> None:
    assert kafka_attributes(
        operation="process", topic="t", key="k", partition=2, offset=7, message_id="m", group="g"
    ) == {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "t",
        "messaging.kafka.message.key": "k",
        "messaging.destination.partition.id": "2",
        "messaging.kafka.offset": 7,
        "messaging.message.id": "m",
        "messaging.consumer.group.name": "g",
    }
