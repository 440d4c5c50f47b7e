"""Load generators: serial, closed loop at a concurrency, open loop at a fixed rate.

Each returns a :class:`PhaseResult`: latencies of the requests that completed (ms),
how many failed or timed out, wall time and the CPU seconds the system's processes
used during the phase. The open loop measures each latency from the moment the
request was *due*, not from when it was sent, so a system that falls behind is
charged for the queueing it causes (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bench.mock_service import compose, order, product, store, user
from bench.procstat import cpu_seconds

RunOne = Callable[[int], Awaitable[dict[str, Any]]]


def expected(number: int) -> dict[str, Any]:
    """The composed result of order ``o-<number>``, built straight from the mock's data."""
    body = order(number)
    user_number = int(str(body["user_id"]).split("-")[1])
    store_number = int(str(body["store_id"]).split("-")[1])
    items = body["items"]
    assert isinstance(items, list)
    return compose(
        body,
        user(user_number),
        store(store_number),
        [product(int(item["product_id"].split("-")[1])) for item in items],
    )


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile (nearest rank); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@dataclass
class PhaseResult:
    """What one phase measured."""

    requests: int
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    wrong: int = 0
    seconds: float = 0.0
    cpu_s: float = 0.0
    first_error: str = ""

    @property
    def completed(self) -> int:
        return len(self.latencies_ms)

    def figures(self) -> dict[str, float]:
        """The phase's numbers, for the result file."""
        return {
            "requests": self.requests,
            "completed": self.completed,
            "errors": self.errors,
            "wrong": self.wrong,
            "seconds": round(self.seconds, 3),
            "throughput_rps": round(self.completed / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": round(percentile(self.latencies_ms, 0.50), 3),
            "p90_ms": round(percentile(self.latencies_ms, 0.90), 3),
            "p99_ms": round(percentile(self.latencies_ms, 0.99), 3),
            "max_ms": round(max(self.latencies_ms, default=float("nan")), 3),
            "cpu_ms_per_request": round(1000 * self.cpu_s / self.completed, 3)
            if self.completed
            else float("nan"),
        }


class _Recorder:
    def __init__(self, result: PhaseResult, timeout_s: float) -> None:
        self.result = result
        self.timeout_s = timeout_s

    async def one(self, run_one: RunOne, number: int, due: float) -> None:
        try:
            answer = await asyncio.wait_for(run_one(number), self.timeout_s)
        except Exception as error:
            self.result.errors += 1
            self.result.first_error = self.result.first_error or f"{type(error).__name__}: {error}"
            return
        self.result.latencies_ms.append((time.perf_counter() - due) * 1000)
        # Check a sample against the expected composition: cheap, and it catches a
        # system that is fast because it answers the wrong thing.
        if number % 16 == 0 and answer != expected(number):
            self.result.wrong += 1


async def serial(
    run_one: RunOne, *, pids: list[int], requests: int, first: int, max_s: float = 1e9
) -> PhaseResult:
    """One request at a time: ``requests`` of them, or as many as fit in ``max_s``."""
    result = PhaseResult(requests=0)
    recorder = _Recorder(result, timeout_s=30)
    cpu_before = cpu_seconds(pids)
    started = time.perf_counter()
    for number in range(first, first + requests):
        if time.perf_counter() - started > max_s:
            break
        result.requests += 1
        await recorder.one(run_one, number, time.perf_counter())
    result.seconds = time.perf_counter() - started
    result.cpu_s = cpu_seconds(pids) - cpu_before
    return result


async def closed_loop(
    run_one: RunOne,
    *,
    pids: list[int],
    requests: int,
    concurrency: int,
    first: int,
    max_s: float = 1e9,
) -> PhaseResult:
    """``concurrency`` clients, each sending its next request when its last one is answered.

    Stops sending after ``requests`` or ``max_s`` (requests already sent are awaited);
    throughput is completed requests over the whole phase.
    """
    result = PhaseResult(requests=0)
    recorder = _Recorder(result, timeout_s=120)
    numbers = iter(range(first, first + requests))
    stop_at = time.perf_counter() + max_s

    async def client() -> None:
        for number in numbers:
            if time.perf_counter() > stop_at:
                return
            result.requests += 1
            await recorder.one(run_one, number, time.perf_counter())

    cpu_before = cpu_seconds(pids)
    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(min(concurrency, requests))))
    result.seconds = time.perf_counter() - started
    result.cpu_s = cpu_seconds(pids) - cpu_before
    return result


async def open_loop(
    run_one: RunOne, *, pids: list[int], rate: float, seconds: float, first: int
) -> PhaseResult:
    """Requests due at a fixed ``rate`` per second for ``seconds``, whatever the answers do."""
    count = max(1, int(rate * seconds))
    result = PhaseResult(requests=count)
    recorder = _Recorder(result, timeout_s=30)
    tasks: list[asyncio.Task[None]] = []
    cpu_before = cpu_seconds(pids)
    started = time.perf_counter()
    for index in range(count):
        due = started + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        elif index % 32 == 0:
            await asyncio.sleep(0)  # behind schedule: still let answers in
        tasks.append(asyncio.create_task(recorder.one(run_one, first + index, due)))
    await asyncio.gather(*tasks)
    result.seconds = time.perf_counter() - started
    result.cpu_s = cpu_seconds(pids) - cpu_before
    return result
