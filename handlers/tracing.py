"""OpenTelemetry tracing basics shared by the coordinator, the HTTP adapter and the SDK
worker: whether tracing is on, W3C trace context in Kafka headers, the messaging
attributes of a Kafka span, and the SDK's set-up from the standard ``OTEL_*`` variables.

Tracing is off unless an exporter is configured (``OTEL_TRACES_EXPORTER``, or an
OTLP endpoint) or a program installs an SDK :class:`TracerProvider` itself (tests do).
Off means off: :func:`tracer_of` returns None, and every object that would make
spans keeps that None and checks it once per saga or call, never more.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Tracer, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from handlers.errors import AdapterSetupError

TRACEPARENT = "traceparent"
"""The W3C trace context header, in HTTP and (binary, UTF-8) in Kafka headers."""

INSTRUMENTATION = "orchestrator"
"""The instrumentation scope name of every span the orchestrator makes."""

_PROPAGATOR = TraceContextTextMapPropagator()
_EXPORTERS = ("otlp", "console")


def tracer_of(provider: TracerProvider | None = None) -> Tracer | None:
    """The tracer of ``provider`` (default: the global one), or None when tracing is off.

    The global provider is "off" until an SDK provider is installed
    (:func:`configure_from_env`, or a program's own ``trace.set_tracer_provider``).
    """
    if provider is None:
        provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    return provider.get_tracer(INSTRUMENTATION)


def provider_of(provider: TracerProvider | None = None) -> TracerProvider | None:
    """``provider`` (default: the global one) if tracing is on with it, else None."""
    if provider is None:
        provider = trace.get_tracer_provider()
    return None if tracer_of(provider) is None else provider


def context_from(headers: Mapping[str, str]) -> Context | None:
    """The trace context ``headers`` carry (``traceparent``), or None."""
    if TRACEPARENT not in headers:
        return None
    return _PROPAGATOR.extract(headers)


def trace_headers(context: Context) -> dict[str, str]:
    """``traceparent`` (and ``tracestate``) of the span current in ``context``."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=context)
    return carrier


def kafka_trace_headers(context: Context) -> list[tuple[str, bytes]]:
    """:func:`trace_headers` as Kafka record headers."""
    return [(name, value.encode()) for name, value in trace_headers(context).items()]


def current_trace_headers() -> dict[str, str]:
    """Headers carrying the current span's context; none without a valid current span."""
    carrier: dict[str, str] = {}
    if trace.get_current_span().get_span_context().is_valid:
        _PROPAGATOR.inject(carrier)
    return carrier


def kafka_attributes(
    *,
    operation: str,
    topic: str,
    key: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    message_id: str | None = None,
    group: str | None = None,
) -> dict[str, Any]:
    """The messaging semantic conventions' attributes of one Kafka operation.

    ``operation`` is ``send``, ``receive`` or ``process`` (``messaging.operation.type``).
    """
    attributes: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.destination.name": topic,
    }
    if key is not None:
        attributes["messaging.kafka.message.key"] = key
    if partition is not None:
        attributes["messaging.destination.partition.id"] = str(partition)
    if offset is not None:
        attributes["messaging.kafka.offset"] = offset
    if message_id is not None:
        attributes["messaging.message.id"] = message_id
    if group is not None:
        attributes["messaging.consumer.group.name"] = group
    return attributes


def configure_from_env(
    default_service_name: str, environ: Mapping[str, str] | None = None
) -> TracerProvider | None:
    """Install the OpenTelemetry SDK as the standard ``OTEL_*`` variables say; None if off.

    On when ``OTEL_TRACES_EXPORTER`` names ``otlp`` and/or ``console`` (comma
    separated), or, with it unset, when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set (OTLP over HTTP). Off when nothing
    is set, with ``OTEL_TRACES_EXPORTER=none``, or ``OTEL_SDK_DISABLED=true``. The
    SDK reads the rest itself: ``OTEL_SERVICE_NAME`` (default
    ``default_service_name``), ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``,
    ``OTEL_EXPORTER_OTLP_*``, ``OTEL_BSP_*``.

    Raises:
        AdapterSetupError: an exporter this installation does not have, or an OTLP
            protocol other than ``http/protobuf`` (the one exporter installed).
    """
    environ = os.environ if environ is None else environ
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    configured = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if configured:
        names = [name.strip() for name in configured.split(",") if name.strip() != "none"]
    elif environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    ):
        names = ["otlp"]
    else:
        names = []
    unknown = [name for name in names if name not in _EXPORTERS]
    if unknown:
        raise AdapterSetupError(
            f"OTEL_TRACES_EXPORTER names {', '.join(unknown)}, which this installation "
            "does not have: use otlp (OTLP over HTTP), console or none."
        )
    if not names:
        return None
    if "otlp" in names:
        _check_otlp_protocol(environ)
    # Imported only when tracing is on: the SDK and exporters cost start-up time.
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    attributes = {} if environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: default_service_name}
    provider = SdkTracerProvider(resource=Resource.create(attributes))
    for name in dict.fromkeys(names):
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        else:
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


def _check_otlp_protocol(environ: Mapping[str, str]) -> None:
    """Refuse an OTLP protocol this installation cannot speak, rather than ignore it.

    Only the OTLP/HTTP (protobuf) exporter is a dependency; the gRPC one is not, and
    spans sent over HTTP to a gRPC-only collector would vanish without a word.
    """
    for variable in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        protocol = environ.get(variable, "").strip().lower()
        if not protocol:
            continue
        if protocol != "http/protobuf":
            raise AdapterSetupError(
                f"{variable}={protocol} is not available: only the http/protobuf OTLP "
                "exporter is installed, so set it to http/protobuf (and the endpoint to "
                "the collector's OTLP/HTTP port, usually 4318) or leave it unset."
            )
        return  # the traces-specific variable wins over the general one
