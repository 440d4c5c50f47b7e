"""Memory per in-flight saga and the longest GC pause at 10k and 100k in flight.

Starts :mod:`bench.memory_probe` (a coordinator process), publishes ``count``
``parked`` requests (each saga's one step is a Kafka command that nobody answers
during the run, with a 10-minute timeout), waits until the coordinator holds them
all in flight, and reports ``(RSS with them - RSS before) / count``. Payloads are
a few bytes, so the figure is the engine's own cost per saga: its state, its
timer, its changelog bookkeeping, the command it sent.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from bench.systems.base import terminate
from bench.systems.orchestrator import coordinator_env
from orchestrator.client import OrchestratorClient
from orchestrator.settings import CoordinatorSettings


async def in_flight_memory(*, bootstrap: str, count: int, timeout_s: float = 400) -> dict[str, Any]:
    """Hold ``count`` sagas in flight in one coordinator process; returns its figures."""
    prefix = f"bench.memory.{uuid.uuid4().hex[:6]}"
    settings = CoordinatorSettings.from_env(bootstrap_servers=bootstrap).with_topics(prefix)
    env = coordinator_env(
        settings,
        ORCH_MAX_IN_FLIGHT=str(count + 1000),
        BENCH_PARKED_TOPIC=f"{prefix}.parked.commands",
        BENCH_MOCK_URL="http://127.0.0.1:9",
    )
    log_path = Path(os.environ.get("BENCH_LOG_DIR", "/tmp")) / f"{prefix}.log"
    # A harness starting its system under test: blocking briefly here is fine.
    with log_path.open("ab") as log:
        process = subprocess.Popen(  # noqa: ASYNC220
            [sys.executable, "-m", "bench.memory_probe"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
        )
    latest: dict[str, Any] = {}

    def read_lines() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            latest.update(orjson.loads(line))

    reader = threading.Thread(target=read_lines, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while "base_rss" not in latest:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the memory probe's coordinator did not start")
            await asyncio.sleep(0.2)
        base = dict(latest)
        started = time.monotonic()
        async with OrchestratorClient(settings, source="urn:orchestrator:bench") as client:
            for chunk in range(0, count, 2000):
                await asyncio.gather(
                    *(
                        client.send("parked", {"n": n}, request_id=f"{prefix}-{n}")
                        for n in range(chunk, min(count, chunk + 2000))
                    )
                )
        while latest.get("in_flight", 0) < count:
            if process.poll() is not None:
                raise RuntimeError("the memory probe's coordinator stopped")
            if time.monotonic() - started > timeout_s:
                break  # report what was reached; the figures say how many
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)  # one more report with all of them in
        held = dict(latest)
    finally:
        await terminate(process, timeout_s=120)
    grown = held["rss"] - base["base_rss"]
    return {
        "asked": count,
        "in_flight": held["in_flight"],
        "rss_before_mb": round(base["base_rss"] / 2**20, 1),
        "rss_with_sagas_mb": round(held["rss"] / 2**20, 1),
        "bytes_per_saga": round(grown / held["in_flight"]),
        "gc_longest_pause_ms": held["gc_longest_ms"],
        "gc_collections": held["gc_collections"],
        "gc_total_ms": held["gc_total_ms"],
        "seconds_to_admit": round(time.monotonic() - started, 1),
    }
