"""The dispatcher with cached operations: each saga gets its own reply for a shared
or kept answer, the shared call is the first caller's, and a finished saga's
cancellation spares the others; operations without a cache are called every time."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from handlers.context import CallContext
from handlers.outcome import CallOutcome
from orchestrator.runtime.adapters import KafkaRoute, Routes
from orchestrator.runtime.call_cache import CallCache
from orchestrator.runtime.dispatcher import CallDispatcher
from orchestrator.runtime.metrics import CoordinatorMetrics
from orchestrator.saga import CallReplied, DispatchCall, SagaEvent
from orchestrator.settings import CoordinatorSettings

NOW_MS = 1_700_000_000_000


class GatedAdapter:
    """An in-process adapter that answers ``{"op": ..., "id": ...}`` once ``gate`` opens."""

    def __init__(self) -> None:
        self.contexts: list[CallContext] = []
        self.cancelled = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def call(
        self, operation: str, payload: Any, *, context: CallContext, timeout_s: float
    ) -> CallOutcome:
        self.contexts.append(context)
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return CallOutcome.ok({"op": operation, "id": payload["id"]})


class Replies:
    def __init__(self) -> None:
        self.events: dict[str, SagaEvent] = {}

    def __call__(self, request_id: str, event: SagaEvent, *, run: int | None) -> None:
        self.events[request_id] = event


def dispatcher_for(adapter: GatedAdapter, replies: Replies) -> CallDispatcher:
    return CallDispatcher(
        routes=Routes({"users": adapter}, cached={("users", "get_user"): 60_000}),
        settings=CoordinatorSettings(),
        clock=lambda: NOW_MS,
        deliver=replies,
        call_cache=CallCache(max_entries=10),
    )


def call_of(request_id: str, *, operation: str = "get_user", user: str = "u-1") -> DispatchCall:
    return DispatchCall(
        request_id=request_id,
        flow="profile",
        step="user",
        call="user",
        attempt=1,
        service="users",
        operation=operation,
        input={"id": user},
        deadline_ms=NOW_MS + 5_000,
        correlation_id=f"{request_id}/user/1",
        idempotency_key=f"{request_id}:user",
    )


async def settle(dispatcher: CallDispatcher) -> None:
    """Let the loop run until no call is in flight."""
    for _ in range(1_000):
        if not (dispatcher.calls_in_flight or dispatcher.call_cache.calls_in_flight):
            return
        await asyncio.sleep(0)
    raise AssertionError("calls still in flight")


async def test_each_saga_gets_its_own_reply_from_one_shared_call() -> None:
    adapter, replies = GatedAdapter(), Replies()
    dispatcher = dispatcher_for(adapter, replies)
    adapter.gate.clear()

    for request_id in ("r-1", "r-2", "r-3"):
        dispatcher.dispatch(call_of(request_id), reply_partition=0, run=1)
    await asyncio.sleep(0.01)
    assert dispatcher.calls_in_flight == 1, "sagas waiting for a shared call hold no connection"
    adapter.gate.set()
    await settle(dispatcher)
    dispatcher.dispatch(call_of("r-4"), reply_partition=0, run=1)  # answered from the cache
    await settle(dispatcher)

    assert sorted(replies.events) == ["r-1", "r-2", "r-3", "r-4"]
    for event in replies.events.values():
        assert isinstance(event, CallReplied)
        assert (event.call, event.status, event.output) == (
            "user",
            "ok",
            {"op": "get_user", "id": "u-1"},
        )
    [context] = adapter.contexts
    assert context.idempotency_key == "r-1:user", "the shared call is the first caller's"
    cache = dispatcher.call_cache
    assert (cache.misses, cache.coalesced, cache.hits) == (1, 2, 1)


async def test_an_operation_without_a_cache_is_called_every_time() -> None:
    adapter, replies = GatedAdapter(), Replies()
    dispatcher = dispatcher_for(adapter, replies)

    for request_id in ("r-1", "r-2", "r-3"):
        dispatcher.dispatch(call_of(request_id, operation="list_users"), reply_partition=0, run=1)
    await settle(dispatcher)

    assert len(adapter.contexts) == 3
    assert len(replies.events) == 3
    assert dispatcher.call_cache.misses == 0


async def test_a_finished_saga_leaves_the_shared_call_to_the_others() -> None:
    adapter, replies = GatedAdapter(), Replies()
    dispatcher = dispatcher_for(adapter, replies)
    adapter.gate.clear()
    dispatcher.dispatch(call_of("r-1"), reply_partition=0, run=1)
    dispatcher.dispatch(call_of("r-2"), reply_partition=0, run=1)
    await asyncio.sleep(0.01)

    dispatcher.cancel("r-1")  # its saga ended (a flow deadline, another step failed)
    await asyncio.sleep(0.01)
    adapter.gate.set()
    await settle(dispatcher)

    assert list(replies.events) == ["r-2"]
    assert adapter.cancelled == 0


async def test_the_shared_call_is_cancelled_when_every_saga_waiting_for_it_ended() -> None:
    adapter, replies = GatedAdapter(), Replies()
    dispatcher = dispatcher_for(adapter, replies)
    adapter.gate.clear()
    dispatcher.dispatch(call_of("r-1"), reply_partition=0, run=1)
    dispatcher.dispatch(call_of("r-2"), reply_partition=0, run=1)
    await asyncio.sleep(0.01)

    dispatcher.cancel("r-1")
    dispatcher.cancel("r-2")
    await settle(dispatcher)

    assert replies.events == {}
    assert adapter.cancelled == 1


async def test_aclose_ends_the_shared_calls_too() -> None:
    adapter, replies = GatedAdapter(), Replies()
    dispatcher = dispatcher_for(adapter, replies)
    adapter.gate.clear()
    dispatcher.dispatch(call_of("r-1"), reply_partition=0, run=1)
    await asyncio.sleep(0.01)

    await dispatcher.aclose()

    assert (adapter.cancelled, dispatcher.call_cache.calls_in_flight) == (1, 0)


class SentCommands:
    """A publisher that keeps the records it is given."""

    def __init__(self) -> None:
        self.records: list[Any] = []

    async def send(self, records: list[Any]) -> None:
        self.records.extend(records)


async def test_a_deadline_of_a_saga_that_ended_counts_no_step_timeout() -> None:
    now = [NOW_MS]
    running = {"a"}
    metrics = CoordinatorMetrics()
    dispatcher = CallDispatcher(
        routes=Routes({"users": KafkaRoute(command_topic="users.commands")}),
        settings=CoordinatorSettings(),
        clock=lambda: now[0],
        deliver=Replies(),
        metrics=metrics,
        alive=lambda request_id, run: request_id in running,
    )
    dispatcher.publisher = SentCommands()  # type: ignore[assignment]
    dispatcher.dispatch(call_of("a"), reply_partition=0, run=1)
    dispatcher.dispatch(call_of("b"), reply_partition=0, run=1)  # "b" has ended already
    await asyncio.sleep(0)
    now[0] += 10_000
    loop = asyncio.create_task(dispatcher.run_deadlines())
    for _ in range(100):
        await asyncio.sleep(0)
    dispatcher.closing = True
    await dispatcher.aclose()
    loop.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await loop
    timeouts = [
        sample.value
        for family in metrics.registry.collect()
        if family.name == "orchestrator_call_errors"
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels["code"] == "step.timeout"
    ]
    assert timeouts == [1.0]  # "a"'s only
