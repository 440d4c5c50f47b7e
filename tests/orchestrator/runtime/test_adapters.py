"""In-process SDK adapters as the coordinator calls them: bounded, never raising."""

from __future__ import annotations

import asyncio
import threading

from pydantic import BaseModel

from handlers.context import CallContext
from handlers.sdk import Service
from orchestrator.runtime.adapters import SdkServiceAdapter


class Query(BaseModel):
    id: str


def service() -> Service:
    svc = Service("svc")

    @svc.operation("hang")
    async def hang(query: Query) -> str:
        await asyncio.sleep(30)
        return "never"

    @svc.operation("lies")
    async def lies(query: Query) -> int:
        return object()  # type: ignore[return-value]  # not what the annotation promises

    return svc


async def test_an_operation_past_its_timeout_is_a_technical_error() -> None:
    outcome = await SdkServiceAdapter(service()).call(
        "hang", {"id": "a"}, context=CallContext.for_test(call="s"), timeout_s=0.05
    )

    assert (outcome.status, outcome.error_code) == ("technical_error", "adapter.timeout")


async def test_an_output_the_return_type_cannot_serialise_is_a_technical_error() -> None:
    outcome = await SdkServiceAdapter(service()).call(
        "lies", {"id": "a"}, context=CallContext.for_test(call="s"), timeout_s=5
    )

    assert (outcome.status, outcome.error_code) == ("technical_error", "adapter.invalid_output")
    assert "lies returned a value its return type cannot serialise" in outcome.error_message


async def test_the_call_context_reaches_a_two_parameter_operation() -> None:
    svc = Service("svc")
    seen: list[CallContext] = []

    @svc.operation
    async def reserve(query: Query, ctx: CallContext) -> dict[str, object]:
        seen.append(ctx)
        return {"id": query.id, "key": ctx.idempotency_key, "attempt": ctx.attempt}

    context = CallContext(
        request_id="r-7",
        call="lines#2",
        attempt=3,
        idempotency_key="r-7:lines#2",
        deadline_ms=1_700_000_060_000,
        flow="orders",
        step="lines",
    )

    outcome = await SdkServiceAdapter(svc).call(
        "reserve", {"id": "a"}, context=context, timeout_s=5
    )

    assert (outcome.status, outcome.output) == (
        "ok",
        {"id": "a", "key": "r-7:lines#2", "attempt": 3},
    )
    assert seen == [context]
    assert seen[0].deadline_ms == 1_700_000_060_000


async def test_a_blocking_operation_times_out_without_stalling_the_event_loop() -> None:
    svc = Service("blocking")
    released = threading.Event()

    @svc.operation
    async def block(query: Query) -> str:
        released.wait(10)  # synchronous: would hold the coordinator's loop
        return "late"

    adapter = SdkServiceAdapter(svc)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        outcome = await adapter.call(
            "block", {"id": "a"}, context=CallContext.for_test(call="s"), timeout_s=0.3
        )
    finally:
        ticker.cancel()
        released.set()
        await adapter.aclose()

    assert (outcome.status, outcome.error_code) == ("technical_error", "adapter.timeout")
    assert ticks >= 5  # the loop ran on while the operation blocked its own thread


async def test_a_closed_adapter_stops_its_thread_and_cancels_its_calls() -> None:
    adapter = SdkServiceAdapter(service())
    call = asyncio.create_task(
        adapter.call("hang", {"id": "a"}, context=CallContext.for_test(call="s"), timeout_s=30)
    )
    await asyncio.sleep(0.1)
    before = set(threading.enumerate())

    call.cancel()
    await adapter.aclose()

    (stopped,) = before - set(threading.enumerate())
    assert stopped.name == "adapter-svc"
