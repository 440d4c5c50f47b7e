"""The spans of a saga; made only when tracing is on (see :mod:`handlers.tracing`).

One trace per request::

    client or ingress span                 (the request record's traceparent, if any)
    └── saga order-details      CONSUMER   request consumed -> result acknowledged
        ├── step orders         INTERNAL   one per attempt: dispatch -> answer or timeout
        │   └── POST            CLIENT     aiohttp/httpx instrumentation; the downstream
        │                                  gets its traceparent
        ├── step inventory      INTERNAL
        │   ├── send <commands> PRODUCER   traceparent in the command's Kafka headers
        │   │   └── process <commands>     CONSUMER, in the SDK worker
        │   │       └── send <replies>     PRODUCER, the reply carries the context back
        │   └── process <replies>          CONSUMER, linked to the worker's reply
        ├── compensate charge   INTERNAL   an undo call, with its own client spans
        └── send <results>      PRODUCER   traceparent in the result's Kafka headers

A saga lives across many callbacks, so its spans are started and ended explicitly
and kept in the shell's per-saga object (:class:`SagaSpans`), never in the pure
core's state. No method here raises: a failure (a span processor's bug, an
exporter's) is logged once per kind and drops that saga's trace, never its result.
With tracing off the coordinator holds no :class:`SagaTracer`, and a
saga's ``trace`` is None: no span, no header parsing, one ``is None`` check.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from opentelemetry.context import Context
from opentelemetry.trace import (
    Link,
    Span,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    get_current_span,
)
from opentelemetry.trace import set_span_in_context as context_with

from contracts import cloudevents
from handlers.tracing import TRACEPARENT, context_from, kafka_attributes, kafka_trace_headers
from orchestrator.runtime.never_raise import never_raises, report
from orchestrator.saga import CallReplied, CallTimedOut, DispatchCall
from orchestrator.saga.state import UNDO_SUFFIX
from orchestrator.settings import CoordinatorSettings

# The orchestrator's own span attributes (not error codes: see SPAN_ATTRIBUTES).
FLOW = "orchestrator.flow"
REQUEST_ID = "orchestrator.request_id"
RESUMED = "orchestrator.resumed"
STEP = "orchestrator.step"
CALL = "orchestrator.call"
ATTEMPT = "orchestrator.attempt"
SERVICE = "orchestrator.service"
OPERATION = "orchestrator.operation"
COMPENSATION = "orchestrator.compensation"
OUTCOME = "orchestrator.outcome"
STATUS = "orchestrator.status"
COMPLETE = "orchestrator.complete"
HANDED_OVER = "orchestrator.handed_over"
SPAN_ATTRIBUTES = (
    FLOW,
    REQUEST_ID,
    RESUMED,
    STEP,
    CALL,
    ATTEMPT,
    SERVICE,
    OPERATION,
    COMPENSATION,
    OUTCOME,
    STATUS,
    COMPLETE,
    HANDED_OVER,
)
"""Every attribute name of the orchestrator's own (beside the semantic conventions')."""

P = ParamSpec("P")
R = TypeVar("R")


def _or_drop(
    fallback: object,
) -> Callable[[Callable[Concatenate[SagaSpans, P], R]], Callable[Concatenate[SagaSpans, P], R]]:
    """A :class:`SagaSpans` method that never raises: on a failure the saga's trace is
    dropped (every later method does nothing) and ``fallback`` is returned."""

    def wrap(
        method: Callable[Concatenate[SagaSpans, P], R],
    ) -> Callable[Concatenate[SagaSpans, P], R]:
        kind = f"tracing ({method.__name__})"

        @functools.wraps(method)
        def guarded(self: SagaSpans, /, *args: P.args, **kwargs: P.kwargs) -> R:
            if self.dropped:
                return cast(R, fallback)
            try:
                return method(self, *args, **kwargs)
            except Exception as error:
                self.dropped = True
                report(kind, error)
                return cast(R, fallback)

        return guarded

    return wrap


class SagaTracer:
    """Starts the spans of sagas for one coordinator."""

    def __init__(self, tracer: Tracer, *, settings: CoordinatorSettings) -> None:
        self.tracer = tracer
        self._settings = settings

    @never_raises("tracing (request)", None)
    def request(
        self, *, flow: str, request_id: str, headers: dict[str, str], partition: int, offset: int
    ) -> SagaSpans | None:
        """The saga span of a request just consumed, continuing its ``traceparent``
        (a new trace without one); None if tracing failed."""
        settings = self._settings
        attributes = kafka_attributes(
            operation="process",
            topic=settings.request_topic,
            key=request_id,
            partition=partition,
            offset=offset,
            message_id=headers.get(cloudevents.ID),
            group=settings.group_id,
        )
        attributes[FLOW] = flow
        attributes[REQUEST_ID] = request_id
        span = self.tracer.start_span(
            f"saga {flow}",
            # An empty context, not None ("the current one"): an untraced request
            # starts a trace of its own whatever span happens to be current.
            context=context_from(headers) or Context(),
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        )
        return SagaSpans(self.tracer, span)

    @never_raises("tracing (resumed)", None)
    def resumed(
        self, *, flow: str, request_id: str, partition: int, traceparent: str | None
    ) -> SagaSpans | None:
        """The saga span of a saga restored from the changelog: in the request's trace
        if its start recorded the request's ``traceparent``, else in a new one; None
        if tracing failed."""
        span = self.tracer.start_span(
            f"saga {flow}",
            context=(context_from({TRACEPARENT: traceparent}) if traceparent else None)
            or Context(),
            kind=SpanKind.CONSUMER,
            attributes={
                **kafka_attributes(
                    operation="process",
                    topic=self._settings.request_topic,
                    key=request_id,
                    partition=partition,
                ),
                FLOW: flow,
                REQUEST_ID: request_id,
                RESUMED: True,
            },
        )
        return SagaSpans(self.tracer, span)


class SagaSpans:
    """The open spans of one saga: its own, each call attempt's, and its result's."""

    __slots__ = ("_calls", "_context", "_result", "_tracer", "dropped", "span")

    def __init__(self, tracer: Tracer, span: Span) -> None:
        self._tracer = tracer
        self.span = span
        self._context = context_with(span)
        self._calls: dict[str, tuple[int, Span]] = {}
        self._result: Span | None = None
        self.dropped = False
        """Set when a tracing call failed: the saga goes on untraced."""

    @_or_drop(None)
    def call_dispatched(self, action: DispatchCall) -> Context | None:
        """Start the span of one attempt; returns the context its I/O runs in."""
        undo = action.call.endswith(UNDO_SUFFIX)
        span = self._tracer.start_span(
            f"{'compensate' if undo else 'step'} {action.step}",
            context=self._context,
            attributes={
                STEP: action.step,
                CALL: action.call,
                ATTEMPT: action.attempt,
                SERVICE: action.service,
                OPERATION: action.operation,
                COMPENSATION: undo,
            },
        )
        previous = self._calls.get(action.call)
        if previous is not None:
            previous[1].end()  # an attempt superseded without an answer (re-issued)
        self._calls[action.call] = (action.attempt, span)
        return context_with(span)

    @_or_drop(None)
    def call_ended(self, event: CallReplied | CallTimedOut) -> None:
        """End the span of the attempt ``event`` answers (a late answer ends none)."""
        entry = self._calls.get(event.call)
        if entry is None or entry[0] != event.attempt:
            return
        del self._calls[event.call]
        span = entry[1]
        if isinstance(event, CallTimedOut):
            span.set_attribute(OUTCOME, "timeout")
            span.set_status(Status(StatusCode.ERROR, "step.timeout"))
        else:
            span.set_attribute(OUTCOME, event.status)
            if event.status != "ok":
                code = event.error_code or event.status
                span.set_attribute("error.type", code)
                span.set_status(Status(StatusCode.ERROR, code))
        span.end()

    @_or_drop(None)
    def reply_received(
        self,
        *,
        call: str,
        attempt: int,
        headers: dict[str, str],
        topic: str,
        partition: int,
        offset: int,
    ) -> None:
        """A remote adapter's reply came: a consumer span under its attempt's span."""
        entry = self._calls.get(call)
        if entry is None or entry[0] != attempt:
            return
        sent = context_from(headers)
        links = []
        if sent is not None:
            links.append(Link(get_current_span(sent).get_span_context()))
        span = self._tracer.start_span(
            f"process {topic}",
            context=context_with(entry[1]),
            kind=SpanKind.CONSUMER,
            links=links,
            attributes=kafka_attributes(
                operation="process",
                topic=topic,
                key=headers.get(cloudevents.CORRELATION_ID),
                partition=partition,
                offset=offset,
                message_id=headers.get(cloudevents.ID),
            ),
        )
        span.end()

    @_or_drop([])
    def result(
        self, result: dict[str, Any], *, topic: str, partition: int
    ) -> list[tuple[str, bytes]]:
        """Start the result's producer span; returns the headers that carry its context."""
        request_id = result["request_id"]
        status = result["status"]
        self.span.set_attribute(STATUS, status)
        self.span.set_attribute(COMPLETE, bool(result["complete"]))
        if status != "completed":
            errors = result.get("errors") or [{}]
            self.span.set_status(Status(StatusCode.ERROR, str(errors[0].get("code") or status)))
        span = self._tracer.start_span(
            f"send {topic}",
            context=self._context,
            kind=SpanKind.PRODUCER,
            attributes=kafka_attributes(
                operation="send",
                topic=topic,
                key=request_id,
                partition=partition,
                message_id=f"{request_id}:result",
            ),
        )
        self._result = span
        return kafka_trace_headers(context_with(span))

    @_or_drop(None)
    def result_sent(self) -> None:
        """The result is acknowledged: the saga's trace is complete."""
        if self._result is not None:
            self._result.end()
            self._result = None
        self.end(None)

    @_or_drop(None)
    def end(self, handed_over: str | None) -> None:
        """End every open span; ``handed_over`` says why the saga left this instance."""
        for _, span in self._calls.values():
            span.set_attribute(OUTCOME, "abandoned")
            span.end()
        self._calls.clear()
        if handed_over is not None:
            self.span.set_attribute(HANDED_OVER, handed_over)
        self.span.end()
