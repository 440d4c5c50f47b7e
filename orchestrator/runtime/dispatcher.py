"""Carry out the saga core's calls: in-process adapters, or step commands on Kafka.

Every call also gets a deadline in one heap, served by one loop, which also holds
retry backoffs and flow deadlines (:class:`~orchestrator.saga.ArmTimer`); the
answer, the timeout or the timer goes back to the coordinator as a saga event,
tagged with the run that made the call so that a re-run of the request is not
answered by an old one.

An in-process call of an operation that declares a cache goes through the
:class:`~orchestrator.runtime.call_cache.CallCache` (kept answers, identical calls
in flight made once); the saga still gets its own reply. Other calls pay one dict
lookup for it, none when no operation is cached.

Calls of an HTTP service beyond its connection pool's size wait in its
:class:`~orchestrator.runtime.bulkhead.Bulkheads` lane, and their deadline is armed
only once they start, so waiting for a connection never counts against a timeout.
(Cached calls skip the lane: most of them are answered without a connection.)

A service's circuit breaker and rate limit (:class:`~orchestrator.runtime.guards.ServiceGuards`)
come on top: an open circuit answers ``circuit.open`` at once; a rate-limited call
waits for its turn after its slot and before its deadline is armed.

Each attempt's duration (dispatch to answer) and error code are counted in the
coordinator's :class:`~orchestrator.runtime.metrics.CoordinatorMetrics`: in the
call's own task for in-process calls; for step commands, from the send to the
reply (:meth:`CallDispatcher.replied`), keyed by (request id, call, attempt) until
the reply or the call's deadline. With tracing on, a call runs in its step span's
context (client spans nest under it) and a step command gets a producer span whose
``traceparent`` travels in the command's headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Tracer, set_span_in_context

from handlers.context import CallContext
from handlers.outcome import CallOutcome
from handlers.tracing import kafka_attributes, kafka_trace_headers
from orchestrator.runtime.adapters import InProcessAdapter, KafkaRoute, Routes
from orchestrator.runtime.bulkhead import Bulkheads
from orchestrator.runtime.call_cache import CallCache
from orchestrator.runtime.guards import ServiceGuards
from orchestrator.runtime.metrics import CoordinatorMetrics
from orchestrator.runtime.never_raise import never_raises
from orchestrator.runtime.publisher import Publisher
from orchestrator.runtime.records import OutgoingRecord, command_record
from orchestrator.runtime.reply_auth import reply_token
from orchestrator.runtime.timers import DeadlineHeap
from orchestrator.saga import (
    ArmTimer,
    CallReplied,
    CallTimedOut,
    DispatchCall,
    RetryDue,
    SagaDeadlinePassed,
    SagaEvent,
)
from orchestrator.settings import CoordinatorSettings

logger = logging.getLogger(__name__)

ADAPTER_GRACE_MS = 100
"""In-process calls may run this much past their deadline, so the saga's own timer
decides (``step.timeout``) and the adapter's timeout only frees the connection."""


class Deliver(Protocol):
    """Hands a call's answer to its saga (the coordinator)."""

    def __call__(self, request_id: str, event: SagaEvent, *, run: int | None) -> None: ...


class CallDispatcher:
    """Performs calls and times them out."""

    def __init__(
        self,
        *,
        routes: Routes,
        settings: CoordinatorSettings,
        clock: Callable[[], int],
        deliver: Deliver,
        metrics: CoordinatorMetrics | None = None,
        tracer: Tracer | None = None,
        call_cache: CallCache | None = None,
        alive: Callable[[str, int], bool] | None = None,
    ) -> None:
        self.publisher: Publisher | None = None
        """Set once the producer runs."""
        self.deadlines = DeadlineHeap()
        self.closing = False
        """Set by a stop: the deadline loop ends even if a cancellation is lost."""
        self._routes = routes
        self._cached = routes.cached
        """TTL (ms) of each cached operation by (service, operation)."""
        self.call_cache = (
            CallCache(max_entries=settings.cache_max_entries) if call_cache is None else call_cache
        )
        """Answers of cached operations and the calls they share; its counters are metrics."""
        self._settings = settings
        self._clock = clock
        self._deliver = deliver
        self._metrics = CoordinatorMetrics() if metrics is None else metrics
        self._tracer = tracer
        self._alive = alive
        """Whether a saga (request id, run) still runs: a deadline of one that ended
        is not a timeout (its unanswered command does not count as step.timeout)."""
        self._sent: dict[tuple[str, str, int], tuple[int, str, str, int]] = {}
        """Step commands awaiting their reply, by (request id, call, attempt): when
        they were sent (monotonic ns), service, operation and run."""
        self._deadline_changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._calls: dict[str, set[asyncio.Task[None]]] = {}
        """In-process calls by request id, so a finished saga's calls can be cancelled."""
        self.bulkheads = Bulkheads(
            routes.concurrency_limits(shared_pool=settings.http_max_connections)
        )
        self.guards = ServiceGuards(
            circuits=routes.circuits, rate_limits=routes.rate_limits, metrics=self._metrics
        )
        """Circuit breakers and rate limits of the services that declare them."""

    @property
    def calls_in_flight(self) -> int:
        """In-process calls running now; a call waiting for an identical one in flight
        (:class:`CallCache`) or for a slot of its service (:class:`Bulkheads`) holds no
        connection and is not counted: one slow service's queue must not stop the
        intake of requests for the others."""
        return len(self._tasks) - self.call_cache.joined_waiters - self.bulkheads.queued

    def dispatch(
        self,
        action: DispatchCall,
        *,
        reply_partition: int,
        run: int,
        trace_context: Context | None = None,
        reply_secret: str | None = None,
    ) -> None:
        """Start one call and arm its deadline (``trace_context``: its step span's;
        ``reply_secret``: the saga's, a step command's reply token is made from it)."""
        route = self._routes[action.service]
        if isinstance(route, KafkaRoute):
            self._sent[(action.request_id, action.call, action.attempt)] = (
                time.monotonic_ns(),
                action.service,
                action.operation,
                run,
            )
            self._spawn(
                self._send_command(
                    action,
                    route,
                    reply_partition=reply_partition,
                    trace_context=trace_context,
                    reply_token=(
                        None
                        if reply_secret is None
                        else reply_token(reply_secret, action.correlation_id)
                    ),
                )
            )
        else:
            cache_ttl_ms = (
                self._cached.get((action.service, action.operation)) if self._cached else None
            )
            # An open circuit answers at once: no slot, no turn, no deadline. (A cached
            # operation asks the cache first: a kept answer is served even so.)
            if self.guards.circuits and cache_ttl_ms is None:
                refusal = self.guards.refusal_now(action.service)
                if refusal is not None:
                    self._spawn(self._refuse(action, refusal, run=run))
                    return
            holds_slot = cache_ttl_ms is None and self.bulkheads.try_enter(action.service)
            queued = cache_ttl_ms is None and (
                not holds_slot or action.service in self.guards.limiters
            )
            task = self._spawn(
                self._call_when_free(
                    route, action, run=run, holds_slot=holds_slot, trace_context=trace_context
                )
                if queued
                else self._call_in_process(
                    route, action, run=run, cache_ttl_ms=cache_ttl_ms, trace_context=trace_context
                )
            )
            if holds_slot:
                # A done callback, not a finally: a task cancelled before it first
                # runs never enters its coroutine, and its slot must come back too.
                service = action.service
                task.add_done_callback(lambda _: self.bulkheads.leave(service))
            calls = self._calls.get(action.request_id)
            if calls is None:
                calls = self._calls[action.request_id] = set()
            calls.add(task)
            task.add_done_callback(lambda done: self._call_done(action.request_id, done))
            if queued:
                return  # its deadline is armed when it starts
        self._arm_call(action, run=run)

    def _arm_call(self, action: DispatchCall, *, run: int) -> None:
        if self.deadlines.push(
            at_ms=action.deadline_ms,
            request_id=action.request_id,
            call=action.call,
            attempt=action.attempt,
            run=run,
        ):
            self._deadline_changed.set()

    def arm(self, timer: ArmTimer, *, request_id: str, run: int) -> None:
        """Put a retry backoff or a flow deadline in the one heap."""
        if self.deadlines.push(
            at_ms=timer.at_ms,
            request_id=request_id,
            call=timer.call,
            attempt=timer.attempt,
            run=run,
            kind=timer.kind,
        ):
            self._deadline_changed.set()

    async def run_deadlines(self) -> None:
        """Deliver each timer as it falls due; runs until cancelled or closing."""
        while not self.closing:
            now = self._clock()
            for deadline in self.deadlines.pop_due(now):
                event: SagaEvent
                if deadline.kind == "call":
                    if self._sent:
                        self._unanswered(deadline.request_id, deadline.call, deadline.attempt)
                    event = CallTimedOut(call=deadline.call, attempt=deadline.attempt, at_ms=now)
                elif deadline.kind == "retry":
                    event = RetryDue(call=deadline.call, attempt=deadline.attempt, at_ms=now)
                else:
                    event = SagaDeadlinePassed(at_ms=now)
                self._deliver(deadline.request_id, event, run=deadline.run)
            next_at = self.deadlines.next_at_ms()
            wait_s = 1.0 if next_at is None else max(next_at - self._clock(), 0) / 1000
            # No await between computing the wait and clearing: a push that makes
            # an earlier deadline cannot slip in between and be missed.
            self._deadline_changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._deadline_changed.wait(), timeout=wait_s)

    def replied(
        self, request_id: str, call: str, attempt: int, *, status: str, error_code: str | None
    ) -> None:
        """A step command's reply came: count its duration and outcome."""
        sent = self._sent.pop((request_id, call, attempt), None)
        if sent is None:
            return  # a duplicate, or a reply after the deadline
        started_ns, service, operation, _ = sent
        self._metrics.call_answered(service, operation, (time.monotonic_ns() - started_ns) / 1e9)
        if status != "ok":
            self._metrics.call_failed(service, operation, error_code or status)

    def _unanswered(self, request_id: str, call: str, attempt: int) -> None:
        sent = self._sent.pop((request_id, call, attempt), None)
        if sent is not None and (self._alive is None or self._alive(request_id, sent[3])):
            self._metrics.call_failed(sent[1], sent[2], "step.timeout")

    def cancel(self, request_id: str) -> None:
        """Cancel the in-process calls of a saga that ended or moved away.

        Cancelling an HTTP call closes its connection, so a finished saga holds no
        socket, no buffer and no pool slot.
        """
        for task in self._calls.pop(request_id, ()):
            task.cancel()

    def prune(self, alive: Callable[[str, int], bool]) -> None:
        """Drop timers of sagas that are gone, once they outnumber the live ones."""
        self.deadlines.prune(lambda deadline: alive(deadline.request_id, deadline.run))
        self._sent = {key: sent for key, sent in self._sent.items() if alive(key[0], sent[3])}

    def _call_done(self, request_id: str, task: asyncio.Task[None]) -> None:
        calls = self._calls.get(request_id)
        if calls is not None:
            calls.discard(task)
            if not calls:
                del self._calls[request_id]

    async def aclose(self) -> None:
        """Abandon calls in progress (their sagas re-run on the partition's next owner)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.call_cache.aclose()

    async def _send_command(
        self,
        action: DispatchCall,
        route: KafkaRoute,
        *,
        reply_partition: int,
        trace_context: Context | None,
        reply_token: str | None,
    ) -> None:
        assert self.publisher is not None
        span = None
        try:
            record = command_record(
                action,
                topic=route.command_topic,
                reply_topic=self._settings.reply_topic,
                reply_partition=reply_partition,
                source=self._settings.source,
                now_ms=self._clock(),
                reply_token=reply_token,
            )
            if trace_context is not None and self._tracer is not None:
                span, record = self._traced_command(route, action, record, trace_context)
            await self.publisher.send([record])
        except Exception:
            # The deadline will fail the call; nothing else waits on this record.
            logger.exception("could not send the command %s", action.correlation_id)
        finally:
            if span is not None:
                _end_span(span)

    @never_raises("tracing (command span)", (None, None))
    def _start_command_span(
        self, route: KafkaRoute, action: DispatchCall, record: OutgoingRecord, context: Context
    ) -> tuple[Span | None, OutgoingRecord | None]:
        assert self._tracer is not None
        span = self._tracer.start_span(
            f"send {route.command_topic}",
            context=context,
            kind=SpanKind.PRODUCER,
            attributes=kafka_attributes(
                operation="send",
                topic=route.command_topic,
                key=action.request_id,
                message_id=action.correlation_id,
            ),
        )
        headers = kafka_trace_headers(set_span_in_context(span))
        return span, dataclasses.replace(record, headers=[*record.headers, *headers])

    def _traced_command(
        self, route: KafkaRoute, action: DispatchCall, record: OutgoingRecord, context: Context
    ) -> tuple[Span | None, OutgoingRecord]:
        """The command with its producer span's context; untraced if tracing fails
        (a span processor's failure must not cost the command)."""
        span, traced = self._start_command_span(route, action, record, context)
        return span, record if traced is None else traced

    async def _call_when_free(
        self,
        adapter: InProcessAdapter,
        action: DispatchCall,
        *,
        run: int,
        holds_slot: bool,
        trace_context: Context | None,
    ) -> None:
        """Wait for a slot (unless it ``holds_slot``) and a turn of the service, then
        make the call with its full timeout."""
        timeout_ms = max(action.deadline_ms - self._clock(), 1)
        if not holds_slot:
            await self.bulkheads.enter(action.service)
        try:
            refusal = await self.guards.take_turn(action.service)
            if refusal is not None:
                await self._refuse(action, refusal, run=run)
                return
            started = dataclasses.replace(action, deadline_ms=self._clock() + timeout_ms)
            self._arm_call(started, run=run)
            await self._call_in_process(
                adapter, started, run=run, cache_ttl_ms=None, trace_context=trace_context
            )
        finally:
            if not holds_slot:  # a slot taken at dispatch goes back in a done callback
                self.bulkheads.leave(action.service)

    async def _refuse(self, action: DispatchCall, outcome: CallOutcome, *, run: int) -> None:
        """Answer a call that was not made (``circuit.open``, ``rate_limit.exceeded``)."""
        self._metrics.call_failed(action.service, action.operation, outcome.error_code or "")
        self._deliver(
            action.request_id,
            CallReplied.from_outcome(
                outcome, call=action.call, attempt=action.attempt, at_ms=self._clock()
            ),
            run=run,
        )

    async def _call_in_process(
        self,
        adapter: InProcessAdapter,
        action: DispatchCall,
        *,
        run: int,
        cache_ttl_ms: int | None,
        trace_context: Context | None,
    ) -> None:
        if trace_context is not None:
            # This task is the call's own: the adapter's client spans nest under the
            # step span. (Attached for the task's life; it ends with the call.)
            otel_context.attach(trace_context)
        started_ns = time.monotonic_ns()
        if cache_ttl_ms is None:
            outcome = await self._perform(adapter, action)
        else:
            # A shared call runs with the context and timeout of the caller that made it.
            outcome = await self.call_cache.call(
                action.service,
                action.operation,
                action.input,
                ttl_ms=cache_ttl_ms,
                time_left_s=max(action.deadline_ms - self._clock(), 0) / 1000,
                perform=lambda: self._perform_paced(adapter, action),
            )
        metrics = self._metrics
        metrics.call_answered(
            action.service, action.operation, (time.monotonic_ns() - started_ns) / 1e9
        )
        if outcome.status != "ok":
            metrics.call_failed(action.service, action.operation, outcome.error_code or "")
        self._deliver(
            action.request_id,
            CallReplied.from_outcome(
                outcome, call=action.call, attempt=action.attempt, at_ms=self._clock()
            ),
            run=run,
        )

    async def _perform_paced(self, adapter: InProcessAdapter, action: DispatchCall) -> CallOutcome:
        """A cached operation's call, made when the service's rate limit gives it a turn
        (the wait counts against this call's time: see :mod:`.guards`)."""
        refusal = await self.guards.take_turn(action.service)
        return refusal if refusal is not None else await self._perform(adapter, action)

    async def _perform(self, adapter: InProcessAdapter, action: DispatchCall) -> CallOutcome:
        """One call of the adapter through its service's circuit; never raises."""
        if not self.guards.circuits:
            return await self._perform_now(adapter, action)
        return await self.guards.through_circuit(
            action.service,
            lambda: self._perform_now(adapter, action),
            overdue=lambda: self._clock() >= action.deadline_ms,
        )

    async def _perform_now(self, adapter: InProcessAdapter, action: DispatchCall) -> CallOutcome:
        """One call of the adapter, bounded by the call's deadline; never raises."""
        timeout_s = (max(action.deadline_ms - self._clock(), 1) + ADAPTER_GRACE_MS) / 1000
        try:
            return await adapter.call(
                action.operation,
                action.input,
                context=CallContext(
                    request_id=action.request_id,
                    call=action.call,
                    attempt=action.attempt,
                    idempotency_key=action.idempotency_key,
                    deadline_ms=action.deadline_ms,
                    flow=action.flow,
                    step=action.step,
                ),
                timeout_s=timeout_s,
            )
        except Exception as error:
            logger.exception("adapter %s raised", action.service)
            return CallOutcome.technical_error(
                "adapter.exception", f"{type(error).__name__}: {error}"
            )

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


@never_raises("tracing (command span)", None)
def _end_span(span: Span) -> None:
    span.end()
