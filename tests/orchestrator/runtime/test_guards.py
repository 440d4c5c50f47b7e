"""The dispatcher with a service's circuit breaker, rate limit and concurrency cap:
an open circuit answers ``circuit.open`` without calling the adapter, a call waits for
its turn before its timeout starts (or is refused with ``rate_limit.exceeded``), and
``max_concurrency`` bounds an SDK service's calls in flight."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

from contracts.catalog import CircuitPolicy, RateLimitPolicy
from handlers.context import CallContext
from handlers.outcome import CallOutcome
from orchestrator.runtime.adapters import Routes
from orchestrator.runtime.dispatcher import CallDispatcher
from orchestrator.runtime.metrics import CoordinatorMetrics
from orchestrator.saga import CallReplied, DispatchCall, SagaEvent
from orchestrator.settings import CoordinatorSettings

TIMEOUT_MS = 5_000


def now_ms() -> int:
    return int(time.time() * 1000)


class Adapter:
    """Answers a technical error while ``failing``, else ok; waits for ``gate``."""

    def __init__(self) -> None:
        self.contexts: list[CallContext] = []
        self.failing = False
        self.gate = asyncio.Event()
        self.gate.set()

    async def call(
        self, operation: str, payload: Any, *, context: CallContext, timeout_s: float
    ) -> CallOutcome:
        self.contexts.append(context)
        await self.gate.wait()
        if self.failing:
            return CallOutcome.technical_error("adapter.exception", "down")
        return CallOutcome.ok({"n": payload["n"]})


class Replies:
    def __init__(self) -> None:
        self.events: dict[str, SagaEvent] = {}

    def __call__(self, request_id: str, event: SagaEvent, *, run: int | None) -> None:
        self.events[request_id] = event

    def code(self, request_id: str) -> str | None:
        event = self.events[request_id]
        assert isinstance(event, CallReplied)
        return event.error_code


def call_of(n: int) -> DispatchCall:
    request_id = f"r-{n}"
    return DispatchCall(
        request_id=request_id,
        flow="f",
        step="s",
        call="s",
        attempt=1,
        service="svc",
        operation="op",
        input={"n": n},
        deadline_ms=now_ms() + TIMEOUT_MS,
        correlation_id=f"{request_id}/s/1",
        idempotency_key=f"{request_id}:s",
    )


def dispatcher(adapter: Adapter, replies: Replies, routes: Routes) -> CallDispatcher:
    return CallDispatcher(
        routes=routes,
        settings=CoordinatorSettings(),
        clock=now_ms,
        deliver=replies,
        metrics=CoordinatorMetrics(),
    )


async def answered(replies: Replies, count: int) -> None:
    for _ in range(500):
        if len(replies.events) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{len(replies.events)} of {count} calls answered")


def sample(d: CallDispatcher, name: str, **labels: str) -> float | None:
    return d._metrics.registry.get_sample_value(name, labels)


async def test_an_open_circuit_answers_at_once_without_calling_then_a_probe_closes_it() -> None:
    adapter, replies = Adapter(), Replies()
    policy = CircuitPolicy(failure_ratio=0.5, min_calls=3, window_ms=60_000, open_ms=200)
    d = dispatcher(adapter, replies, Routes({"svc": adapter}, circuits={"svc": policy}))
    adapter.failing = True
    for n in range(3):
        d.dispatch(call_of(n), reply_partition=0, run=1)
    await answered(replies, 3)
    assert sample(d, "orchestrator_circuit_open", service="svc") == 1.0

    for n in range(3, 8):
        d.dispatch(call_of(n), reply_partition=0, run=1)
    await answered(replies, 8)
    assert len(adapter.contexts) == 3, "no call reached the adapter while open"
    assert {replies.code(f"r-{n}") for n in range(3, 8)} == {"circuit.open"}
    for n in range(3, 8):
        event = replies.events[f"r-{n}"]
        assert isinstance(event, CallReplied)
        # A retry waits until the circuit may probe, not before.
        assert event.retry_after_ms is not None
        assert 0 < event.retry_after_ms <= 200
    assert sample(d, "orchestrator_calls_rejected_total", service="svc", reason="circuit_open") == 5

    await asyncio.sleep(0.25)  # past open_ms: the next call is a probe
    adapter.failing = False
    d.dispatch(call_of(8), reply_partition=0, run=1)
    await answered(replies, 9)
    assert replies.code("r-8") is None
    assert sample(d, "orchestrator_circuit_open", service="svc") == 0.0
    assert sample(d, "orchestrator_circuit_openings_total", service="svc") == 1
    assert len(adapter.contexts) == 4


async def test_a_wait_for_a_turn_does_not_count_against_the_calls_timeout() -> None:
    adapter, replies = Adapter(), Replies()
    policy = RateLimitPolicy(per_second=10, burst=1, max_wait_ms=5_000)
    d = dispatcher(adapter, replies, Routes({"svc": adapter}, rate_limits={"svc": policy}))
    dispatched_ms = now_ms()
    for n in range(4):
        d.dispatch(call_of(n), reply_partition=0, run=1)
    await answered(replies, 4)
    for event in replies.events.values():
        assert isinstance(event, CallReplied)
        assert event.status == "ok"
    by_n = {context.request_id: context.deadline_ms for context in adapter.contexts}
    # The fourth call waited ~0.3 s for its turn, and still had its whole timeout after.
    assert by_n["r-3"] >= dispatched_ms + TIMEOUT_MS + 250
    assert (sample(d, "orchestrator_rate_limit_wait_seconds_count", service="svc") or 0) == 3


async def test_a_call_that_would_wait_too_long_is_refused_with_a_retry_after() -> None:
    adapter, replies = Adapter(), Replies()
    policy = RateLimitPolicy(per_second=1, burst=2, max_wait_ms=0)
    d = dispatcher(adapter, replies, Routes({"svc": adapter}, rate_limits={"svc": policy}))
    for n in range(3):
        d.dispatch(call_of(n), reply_partition=0, run=1)
    await answered(replies, 3)
    refused = replies.events["r-2"]
    assert isinstance(refused, CallReplied)
    assert (refused.status, refused.error_code) == ("technical_error", "rate_limit.exceeded")
    assert refused.retry_after_ms is not None
    assert 500 <= refused.retry_after_ms <= 1_000
    assert len(adapter.contexts) == 2
    assert sample(d, "orchestrator_calls_rejected_total", service="svc", reason="rate_limit") == 1


async def test_max_concurrency_bounds_an_sdk_services_calls_in_flight() -> None:
    adapter, replies = Adapter(), Replies()
    d = dispatcher(adapter, replies, Routes({"svc": adapter}, max_concurrency={"svc": 2}))
    adapter.gate.clear()
    for n in range(5):
        d.dispatch(call_of(n), reply_partition=0, run=1)
    await asyncio.sleep(0.05)
    assert len(adapter.contexts) == 2
    assert d.bulkheads.waiting("svc") == 3
    adapter.gate.set()
    await answered(replies, 5)
    assert len(adapter.contexts) == 5


async def test_calls_cancelled_past_their_deadline_count_as_failures_earlier_ones_do_not() -> None:
    adapter, replies = Adapter(), Replies()
    policy = CircuitPolicy(failure_ratio=0.5, min_calls=2, window_ms=60_000, open_ms=60_000)
    d = dispatcher(adapter, replies, Routes({"svc": adapter}, circuits={"svc": policy}))
    adapter.gate.clear()  # the service hangs
    for n in range(2):
        d.dispatch(call_of(n), reply_partition=0, run=1)
    await asyncio.sleep(0.05)
    for n in range(2):
        d.cancel(f"r-{n}")  # their sagas ended (not timed out): no verdict
    await asyncio.sleep(0.01)
    assert d.guards.circuits["svc"].state == "closed"

    for n in range(2, 4):
        d.dispatch(
            dataclasses.replace(call_of(n), deadline_ms=now_ms() + 30), reply_partition=0, run=1
        )
    await asyncio.sleep(0.1)
    for n in range(2, 4):
        d.cancel(f"r-{n}")  # their sagas timed out, then ended: the service failed them
    await asyncio.sleep(0.01)
    assert d.guards.circuits["svc"].state == "open"
