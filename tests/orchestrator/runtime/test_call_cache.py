"""The call cache: kept ok answers (TTL, LRU), identical calls in flight made once,
and cancellation that frees a shared call only when its last waiter goes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from handlers.outcome import CallOutcome
from orchestrator.errors import SetupError
from orchestrator.runtime.call_cache import CallCache, Perform

TTL_MS = 1_000
TIME_LEFT_S = 10.0


class FakeClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance_ms(self, ms: float) -> None:
        self.now += ms / 1000


class Downstream:
    """Counts calls; each answers ``answer`` once ``gate`` is open (open by default)."""

    def __init__(self, answer: CallOutcome | None = None) -> None:
        self.answer = answer or CallOutcome.ok({"name": "Ada"})
        self.calls: list[str] = []
        """Who made each call (the caller whose ``perform`` ran)."""
        self.cancelled: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()

    def perform(self, caller: str = "caller") -> Perform:
        async def call() -> CallOutcome:
            self.calls.append(caller)
            try:
                await self.gate.wait()
            except asyncio.CancelledError:
                self.cancelled.append(caller)
                raise
            return self.answer

        return call


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cache(clock: FakeClock) -> CallCache:
    return CallCache(max_entries=100, clock=clock)


async def call(
    cache: CallCache,
    downstream: Downstream,
    payload: Any = None,
    *,
    caller: str = "caller",
    operation: str = "get_user",
    time_left_s: float = TIME_LEFT_S,
) -> CallOutcome:
    return await cache.call(
        "users",
        operation,
        {"user_id": "u-1"} if payload is None else payload,
        ttl_ms=TTL_MS,
        time_left_s=time_left_s,
        perform=downstream.perform(caller),
    )


async def until(condition: Any, *, turns: int = 1_000) -> None:
    """Let the loop run until ``condition()`` holds."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"still not true after {turns} turns of the loop")


def counters(cache: CallCache) -> tuple[int, int, int, int]:
    return cache.hits, cache.misses, cache.coalesced, cache.evictions


async def test_an_ok_answer_is_reused_within_its_ttl(cache: CallCache, clock: FakeClock) -> None:
    downstream = Downstream()

    first = await call(cache, downstream)
    clock.advance_ms(TTL_MS - 1)
    second = await call(cache, downstream)

    assert first == second == CallOutcome.ok({"name": "Ada"})
    assert downstream.calls == ["caller"]
    assert counters(cache) == (1, 1, 0, 0)


async def test_an_expired_answer_is_asked_for_again(cache: CallCache, clock: FakeClock) -> None:
    downstream = Downstream()

    await call(cache, downstream)
    clock.advance_ms(TTL_MS)
    await call(cache, downstream)

    assert len(downstream.calls) == 2
    assert counters(cache) == (0, 2, 0, 0)
    assert len(cache) == 1, "the expired answer was replaced, not kept beside the new one"


async def test_the_ttl_runs_from_when_the_answer_arrived(
    cache: CallCache, clock: FakeClock
) -> None:
    downstream = Downstream()
    downstream.gate.clear()
    slow = asyncio.create_task(call(cache, downstream))
    await until(lambda: downstream.calls)
    clock.advance_ms(5 * TTL_MS)  # the call took longer than the TTL
    downstream.gate.set()
    await slow

    clock.advance_ms(TTL_MS - 1)
    await call(cache, downstream)

    assert cache.hits == 1
    assert len(downstream.calls) == 1


async def test_inputs_equal_as_json_share_one_answer(cache: CallCache) -> None:
    downstream = Downstream()

    await call(cache, downstream, {"user_id": "u-1", "fields": {"a": 1, "b": 2}})
    await call(cache, downstream, {"fields": {"b": 2, "a": 1}, "user_id": "u-1"})
    await call(cache, downstream, {"user_id": "u-2", "fields": {"a": 1, "b": 2}})
    await call(cache, downstream, {"user_id": "u-1", "fields": {"a": 1, "b": 2}}, operation="other")

    assert len(downstream.calls) == 3
    assert counters(cache) == (1, 3, 0, 0)


async def test_identical_calls_in_flight_are_made_once(cache: CallCache) -> None:
    downstream = Downstream()
    downstream.gate.clear()
    waiters = [asyncio.create_task(call(cache, downstream, caller=f"saga-{n}")) for n in range(20)]
    await until(lambda: cache.coalesced == 19)
    assert (cache.calls_in_flight, cache.joined_waiters) == (1, 19)

    downstream.gate.set()
    outcomes = await asyncio.gather(*waiters)

    assert outcomes == [CallOutcome.ok({"name": "Ada"})] * 20
    assert downstream.calls == ["saga-0"], "made once, with the first caller's perform"
    assert counters(cache) == (0, 1, 19, 0)
    assert (cache.calls_in_flight, cache.joined_waiters) == (0, 0)


@pytest.mark.parametrize(
    "error",
    [
        CallOutcome.business_error("http.404", "no such user"),
        CallOutcome.technical_error("http.503", "maintenance"),
        CallOutcome.technical_error("http.timeout", "GET /users/u-1 took longer than 1 s"),
    ],
    ids=["business", "technical", "timeout"],
)
async def test_an_error_is_never_kept(cache: CallCache, error: CallOutcome) -> None:
    downstream = Downstream(error)

    first = await call(cache, downstream)
    downstream.answer = CallOutcome.ok({"name": "Ada"})
    second = await call(cache, downstream)
    third = await call(cache, downstream)

    assert (first, second, third) == (error, downstream.answer, downstream.answer)
    assert len(downstream.calls) == 2
    assert counters(cache) == (1, 2, 0, 0)


async def test_waiters_of_a_shared_call_all_get_its_error(cache: CallCache) -> None:
    error = CallOutcome.technical_error("http.503", "maintenance")
    downstream = Downstream(error)
    downstream.gate.clear()
    waiters = [asyncio.create_task(call(cache, downstream)) for _ in range(3)]
    await until(lambda: cache.coalesced == 2)

    downstream.gate.set()

    assert await asyncio.gather(*waiters) == [error] * 3
    assert len(cache) == 0


async def test_cancelling_one_waiter_leaves_the_others_answered(cache: CallCache) -> None:
    downstream = Downstream()
    downstream.gate.clear()
    first, second, third = (
        asyncio.create_task(call(cache, downstream, caller=name))
        for name in ("first", "second", "third")
    )
    await until(lambda: cache.coalesced == 2)

    first.cancel()  # the saga that made the call ended
    await until(first.done)
    assert cache.joined_waiters == 1, "two calls wait on one connection"
    downstream.gate.set()

    assert first.cancelled()
    assert await asyncio.gather(second, third) == [CallOutcome.ok({"name": "Ada"})] * 2
    assert downstream.calls == ["first"]
    assert downstream.cancelled == []
    assert len(cache) == 1, "the shared answer is kept for the next caller"


async def test_the_last_waiter_leaving_cancels_the_shared_call(cache: CallCache) -> None:
    downstream = Downstream()
    downstream.gate.clear()
    waiters = [asyncio.create_task(call(cache, downstream, caller=f"saga-{n}")) for n in range(3)]
    await until(lambda: cache.coalesced == 2)

    for waiter in waiters:
        waiter.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    await until(lambda: cache.calls_in_flight == 0)

    assert downstream.cancelled == ["saga-0"], "the connection is freed"
    assert cache.joined_waiters == 0
    assert len(cache) == 0
    # A caller after that makes a call of its own, not one joined to the cancelled call.
    downstream.gate.set()
    assert await call(cache, downstream, caller="later") == CallOutcome.ok({"name": "Ada"})
    assert downstream.calls == ["saga-0", "later"]


async def test_no_one_joins_a_call_past_its_first_callers_deadline(
    cache: CallCache, clock: FakeClock
) -> None:
    downstream = Downstream()
    downstream.gate.clear()
    first = asyncio.create_task(call(cache, downstream, caller="first", time_left_s=1.0))
    await until(lambda: downstream.calls)
    clock.advance_ms(500)
    joined = asyncio.create_task(call(cache, downstream, caller="joined"))
    await until(lambda: cache.coalesced == 1)
    clock.advance_ms(600)  # the first caller's deadline has passed: a retry starts afresh
    retry = asyncio.create_task(call(cache, downstream, caller="retry"))
    await until(lambda: len(downstream.calls) == 2)

    downstream.gate.set()
    outcomes = await asyncio.gather(first, joined, retry)

    assert outcomes == [CallOutcome.ok({"name": "Ada"})] * 3
    assert downstream.calls == ["first", "retry"]
    assert counters(cache) == (0, 2, 1, 0)


async def test_the_least_recently_used_answer_is_evicted(clock: FakeClock) -> None:
    cache = CallCache(max_entries=2, clock=clock)
    downstream = Downstream()

    for user in ("a", "b", "a", "c"):  # "a" is used again, so "b" is the oldest
        await call(cache, downstream, {"user_id": user})

    assert len(cache) == 2
    assert counters(cache) == (1, 3, 0, 1)
    await call(cache, downstream, {"user_id": "a"})
    await call(cache, downstream, {"user_id": "c"})
    assert cache.hits == 3
    await call(cache, downstream, {"user_id": "b"})
    assert cache.misses == 4


async def test_an_expired_answer_pushed_out_is_not_an_eviction(clock: FakeClock) -> None:
    cache = CallCache(max_entries=1, clock=clock)
    downstream = Downstream()

    await call(cache, downstream, {"user_id": "a"})
    clock.advance_ms(TTL_MS)
    await call(cache, downstream, {"user_id": "b"})

    assert (len(cache), cache.evictions) == (1, 0)


async def test_max_entries_zero_keeps_nothing_but_still_coalesces(clock: FakeClock) -> None:
    cache = CallCache(max_entries=0, clock=clock)
    downstream = Downstream()
    downstream.gate.clear()
    waiters = [asyncio.create_task(call(cache, downstream)) for _ in range(3)]
    await until(lambda: cache.coalesced == 2)
    downstream.gate.set()
    await asyncio.gather(*waiters)

    await call(cache, downstream)

    assert len(downstream.calls) == 2
    assert counters(cache) == (0, 2, 2, 0)
    assert len(cache) == 0


async def test_an_input_that_is_not_json_is_called_uncached(cache: CallCache) -> None:
    downstream = Downstream()

    for _ in range(2):
        await call(cache, downstream, {"user_id": object()})

    assert len(downstream.calls) == 2
    assert len(cache) == 0


async def test_aclose_cancels_the_shared_calls_still_running(cache: CallCache) -> None:
    downstream = Downstream()
    downstream.gate.clear()
    waiter = asyncio.create_task(call(cache, downstream))
    await until(lambda: downstream.calls)

    await cache.aclose()

    assert downstream.cancelled == ["caller"]
    assert cache.calls_in_flight == 0
    with pytest.raises(asyncio.CancelledError):
        await waiter


def test_a_negative_bound_is_a_setup_error() -> None:
    with pytest.raises(SetupError, match="max_entries must be 0 or more, got -1"):
        CallCache(max_entries=-1)
