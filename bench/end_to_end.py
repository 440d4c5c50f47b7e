"""End-to-end throughput and latency of order-details over a real broker.

The demo HTTP services (standard-library threaded servers) run in a process of
their own; the Kafka-native inventory adapter runs in this process beside the
coordinator, and the broker is a third process, all on a 2-core machine: the
figures are of the whole system here, not of the coordinator alone.

Two phases: latency with one request at a time, then throughput with a window of
requests in flight (whose latency is mostly queueing).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson

from handlers.demo.inventory import inventory
from handlers.sdk import Service
from handlers.worker import build_worker
from orchestrator.client import OrchestratorClient
from orchestrator.flow_files import load_flows
from orchestrator.runtime.coordinator import SagaCoordinator
from orchestrator.settings import CoordinatorSettings

FLOWS = Path(__file__).parents[1] / "handlers" / "demo" / "flows"


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@contextlib.contextmanager
def demo_services_process() -> Iterator[dict[str, str]]:
    """Run the demo HTTP services in a child process; yields the catalog's env."""
    process = subprocess.Popen(
        [sys.executable, "-m", "handlers.demo.serve"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        env: dict[str, str] = orjson.loads(process.stdout.readline())
        yield env
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)


async def _round(
    client: OrchestratorClient, *, prefix: str, count: int, window: int
) -> tuple[float, list[float], int]:
    """Send ``count`` requests, ``window`` in flight; returns seconds, latencies, completed."""
    sent_at: dict[str, float] = {}
    pending: list[str] = []
    started = time.monotonic()
    for number in range(count):
        request_id = f"{prefix}-{number}"
        sent_at[request_id] = time.monotonic()
        await client.send("order-details", {"order_id": "o-1"}, request_id=request_id)
        pending.append(request_id)
        if len(pending) >= window:
            await client.wait_for(pending.pop(0), timeout_s=120)
    for request_id in pending:
        await client.wait_for(request_id, timeout_s=120)
    elapsed = time.monotonic() - started
    results = [await client.wait_for(request_id) for request_id in sent_at]
    latencies = [(client.received_at[rid] - sent_at[rid]) * 1000 for rid in sent_at]
    return elapsed, latencies, sum(result["status"] == "completed" for result in results)


async def run(
    bootstrap: str, *, requests: int = 2000, window: int = 200, sequential: int = 200
) -> dict[str, float]:
    """Measure latency one at a time, then throughput with ``window`` in flight."""
    prefix = f"bench.{uuid.uuid4().hex[:8]}"
    settings = CoordinatorSettings.from_env(bootstrap_servers=bootstrap, partitions=6).with_topics(
        prefix
    )
    command_topic = f"{prefix}.inventory.commands"
    with demo_services_process() as env:
        os.environ.update(env)
        os.environ["DEMO_INVENTORY_TOPIC"] = command_topic
        registry = load_flows(FLOWS)
        worker, _ = build_worker(
            Service.with_command_topic(inventory, command_topic),
            bootstrap_servers=bootstrap,
            group_id=f"{prefix}.inventory",
        )
        async with SagaCoordinator(registry=registry, settings=settings) as coordinator:
            await worker.start()
            await asyncio.wait_for(coordinator.assigned.wait(), timeout=60)
            async with OrchestratorClient(settings) as client:
                await client.run("order-details", {"order_id": "o-1"}, timeout_s=60)  # warm up
                _, one_at_a_time, completed_sequential = await _round(
                    client, prefix=f"{prefix}-seq", count=sequential, window=1
                )
                elapsed, windowed, completed = await _round(
                    client, prefix=f"{prefix}-win", count=requests, window=window
                )
            await worker.stop()
    return {
        "sequential": sequential,
        "sequential_completed": completed_sequential,
        "seq_p50_ms": percentile(one_at_a_time, 0.50),
        "seq_p99_ms": percentile(one_at_a_time, 0.99),
        "requests": requests,
        "completed": completed,
        "seconds": elapsed,
        "requests_per_s": requests / elapsed,
        "p50_ms": percentile(windowed, 0.50),
        "p99_ms": percentile(windowed, 0.99),
        "mean_ms": statistics.fmean(windowed),
    }
