"""Calls per service bounded by its pool, the wait kept out of their timeouts."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from contracts.catalog import HttpService
from handlers.demo.http_server import HttpCall, JsonHttpServer, RouteResult
from handlers.http import HttpAdapter, build_http_client
from orchestrator.runtime.adapters import Routes
from orchestrator.runtime.bulkhead import Bulkheads
from orchestrator.runtime.dispatcher import CallDispatcher
from orchestrator.saga import CallReplied, CallTimedOut, DispatchCall, SagaEvent
from orchestrator.settings import CoordinatorSettings


async def test_calls_over_the_bound_wait_in_order_and_get_the_slot_handed_over() -> None:
    bulkheads = Bulkheads({"s": 1})
    assert bulkheads.try_enter("s")
    assert not bulkheads.try_enter("s")
    order: list[str] = []

    async def wait(name: str) -> None:
        await bulkheads.enter("s")
        order.append(name)

    first, second = asyncio.create_task(wait("first")), asyncio.create_task(wait("second"))
    await asyncio.sleep(0)
    assert bulkheads.waiting("s") == 2
    bulkheads.leave("s")
    await asyncio.sleep(0)
    assert order == ["first"]
    assert bulkheads.busy("s") == 1
    bulkheads.leave("s")
    await asyncio.gather(first, second)
    assert order == ["first", "second"]
    bulkheads.leave("s")
    assert bulkheads.busy("s") == 0


async def test_a_cancelled_waiter_leaves_the_line_and_takes_no_slot() -> None:
    bulkheads = Bulkheads({"s": 1})
    assert bulkheads.try_enter("s")
    waiter = asyncio.create_task(bulkheads.enter("s"))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert bulkheads.waiting("s") == 0
    bulkheads.leave("s")
    assert bulkheads.busy("s") == 0
    assert bulkheads.try_enter("s")


def call(n: int, *, deadline_ms: int) -> DispatchCall:
    return DispatchCall(
        request_id=f"r-{n}",
        flow="f",
        step="s",
        call="s",
        attempt=1,
        service="slow",
        operation="get",
        input={"id": f"i-{n}"},
        deadline_ms=deadline_ms,
        correlation_id=f"r-{n}/s/1",
        idempotency_key=f"r-{n}:s",
    )


def test_a_service_without_a_limit_is_not_bounded() -> None:
    bulkheads = Bulkheads({})
    assert all(bulkheads.try_enter("free") for _ in range(1_000))


class Counting:
    """A route that takes 0.3 s and records how many calls it served at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0

    def __call__(self, call: HttpCall) -> RouteResult:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(0.3)
        with self.lock:
            self.now -= 1
        return 200, {"id": call.segments[-1]}


@pytest.fixture
def counting() -> Iterator[tuple[Counting, str]]:
    route = Counting()
    with JsonHttpServer(route, name="slow") as server:
        yield route, server.url


async def test_waiting_for_a_connection_does_not_count_against_a_calls_timeout(
    counting: tuple[Counting, str],
) -> None:
    route, url = counting
    service = HttpService.model_validate(
        {
            "kind": "http",
            "allow": {"loopback": True},
            "base_url": url,
            "max_connections": 2,
            "operations": {"get": {"path": "/items/{id}"}},
        }
    )
    async with build_http_client() as shared:
        adapter = HttpAdapter("slow", service, client=shared)
        events: dict[str, SagaEvent] = {}

        def deliver(request_id: str, event: SagaEvent, *, run: int | None) -> None:
            events.setdefault(request_id, event)

        def clock() -> int:
            return time.time_ns() // 1_000_000

        dispatcher = CallDispatcher(
            routes=Routes({"slow": adapter}),
            settings=CoordinatorSettings(),
            clock=clock,
            deliver=deliver,
        )
        timers = asyncio.create_task(dispatcher.run_deadlines())
        try:
            # Six 0.3 s calls through two connections take 0.9 s; each has 0.5 s.
            for n in range(6):
                dispatcher.dispatch(
                    call(n, deadline_ms=clock() + 500),
                    reply_partition=0,
                    run=1,
                )
            await asyncio.sleep(0.05)
            assert dispatcher.bulkheads.busy("slow") == 2
            assert dispatcher.bulkheads.waiting("slow") == 4
            for _ in range(300):
                if len(events) == 6:
                    break
                await asyncio.sleep(0.01)
        finally:
            dispatcher.closing = True
            timers.cancel()
            await asyncio.gather(timers, return_exceptions=True)
            await dispatcher.aclose()
            await adapter.aclose()

    assert not [rid for rid, event in events.items() if isinstance(event, CallTimedOut)]
    assert sorted(events) == [f"r-{n}" for n in range(6)]
    assert all(isinstance(event, CallReplied) and event.status == "ok" for event in events.values())
    assert route.most == 2
    assert dispatcher.bulkheads.busy("slow") == 0


async def test_calls_cancelled_before_they_ever_ran_give_their_slots_back() -> None:
    """A saga that ends at once cancels calls whose tasks never started: their slots
    (taken at dispatch) must come back, or the service would be starved for ever."""
    service = HttpService.model_validate(
        {
            "kind": "http",
            "allow": {"loopback": True},
            "base_url": "http://127.0.0.1:9",
            "max_connections": 2,
            "operations": {"get": {"path": "/items/{id}"}},
        }
    )
    async with build_http_client() as shared:
        adapter = HttpAdapter("slow", service, client=shared)
        dispatcher = CallDispatcher(
            routes=Routes({"slow": adapter}),
            settings=CoordinatorSettings(),
            clock=lambda: 1_700_000_000_000,
            deliver=lambda request_id, event, *, run: None,
        )
        for n in range(3):
            dispatcher.dispatch(
                call(n, deadline_ms=1_700_000_005_000),
                reply_partition=0,
                run=1,
            )
            dispatcher.cancel(f"r-{n}")
        for _ in range(10):
            await asyncio.sleep(0)
        await dispatcher.aclose()
        await adapter.aclose()
    assert dispatcher.bulkheads.busy("slow") == 0
    assert dispatcher.bulkheads.waiting("slow") == 0
