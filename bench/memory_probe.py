"""Memory per in-flight saga and the longest GC pause, in a coordinator process.

``python -m bench.memory_probe`` runs one :class:`SagaCoordinator` on
``bench/flows`` (topics and broker from the ``ORCH_*`` environment, as
``orchestrator run`` does) and prints one JSON line per half second: sagas in
flight, resident memory, and the garbage collector's pauses (timed with
``gc.callbacks``) since start-up. The parent (:mod:`bench.memory`) publishes
``parked`` requests, whose one step is a Kafka command nobody answers during the
run, and reads these lines until every saga is in flight.

It does what ``orchestrator run`` does at start-up (``gc.freeze()`` once the
coordinator runs), so the figures are the product's, not a tuned copy's.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import sys
import time
from pathlib import Path

import orjson

from bench.procstat import rss_bytes
from orchestrator import eventloop
from orchestrator.flow_files import load_flows
from orchestrator.runtime.coordinator import SagaCoordinator
from orchestrator.settings import CoordinatorSettings

FLOWS = Path(__file__).parent / "flows"


class GcWatch:
    """Times every collection through ``gc.callbacks``."""

    def __init__(self) -> None:
        self.longest_ms = 0.0
        self.total_ms = 0.0
        self.collections = 0
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause_ms = (time.perf_counter() - self._started) * 1000
        self.collections += 1
        self.total_ms += pause_ms
        self.longest_ms = max(self.longest_ms, pause_ms)


async def probe() -> None:
    watch = GcWatch()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    settings = CoordinatorSettings.from_env()
    async with SagaCoordinator(registry=load_flows(FLOWS), settings=settings) as coordinator:
        gc.freeze()
        await asyncio.wait_for(coordinator.assigned.wait(), timeout=90)
        gc.collect()
        base = rss_bytes([os.getpid()])
        watch.longest_ms = watch.total_ms = 0.0
        watch.collections = 0
        while not stop.is_set():
            print(
                orjson.dumps(
                    {
                        "in_flight": coordinator.in_flight,
                        "rss": rss_bytes([os.getpid()]),
                        "base_rss": base,
                        "gc_longest_ms": round(watch.longest_ms, 3),
                        "gc_total_ms": round(watch.total_ms, 1),
                        "gc_collections": watch.collections,
                    }
                ).decode(),
                flush=True,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)


if __name__ == "__main__":
    eventloop.run(probe())
    sys.exit(0)
