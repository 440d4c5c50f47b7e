"""The ingress's tracing: OpenTelemetry's ASGI middleware, when tracing is on.

Its server span is the root of the request's trace (or continues the caller's
``traceparent``); the route publishes the request event while that span is
current, and :class:`~orchestrator.client.OrchestratorClient` puts its
``traceparent`` in the event's Kafka headers, so the coordinator's saga span is its
child. With tracing off there is no middleware at all.
"""

from __future__ import annotations

from opentelemetry.trace import TracerProvider
from starlette.middleware import Middleware

from handlers.tracing import provider_of

EXCLUDED_URLS = r"^[a-z]+://[^/]+/(healthz|readyz|metrics)$"
"""Probes and scrapes make no traces. The middleware searches each URL
(``scheme://host/path``, no query) with these comma-separated regexes, so they are
anchored to the exact paths: a flow named ``user-metrics`` or a request id
containing ``healthz`` is traced."""


def tracing_middleware(provider: TracerProvider | None = None) -> list[Middleware]:
    """``[Middleware(OpenTelemetryMiddleware)]`` with ``provider`` (default: the global
    one) if tracing is on with it; ``[]`` when it is off."""
    provider = provider_of(provider)
    if provider is None:
        return []
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    return [
        Middleware(
            OpenTelemetryMiddleware,
            tracer_provider=provider,
            excluded_urls=EXCLUDED_URLS,
            # One server span per request, not one more per ASGI message.
            exclude_spans=["receive", "send"],
        )
    ]
