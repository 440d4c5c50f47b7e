"""The side-by-side benchmark: every system, the same workload, in one run.

``python -m bench`` (``make bench``) or ``python -m bench --quick``
(``make bench-quick``). It starts a Kafka broker (unless ``KAFKA_BOOTSTRAP_SERVERS``
is set) and the mock service, then for each repeat starts each system in turn
(alternating, so a slow minute of the machine hurts every system alike), runs the
phases of the plan, and stops it. Medians over repeats go to the table, the JSON
file, the Markdown summary and the charts in ``bench/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench import core, load, report
from bench.memory import in_flight_memory
from bench.plan import FULL, QUICK, Plan
from bench.procstat import peak_rss_bytes
from bench.systems.base import System, SystemUnavailable
from bench.systems.direct import DirectAiohttp, DirectHttpx
from bench.systems.orchestrator import OrchestratorSystem
from orchestrator.localkafka import BrokerSettings, bootstrap_from_env, running_broker

RESULTS = Path(__file__).parent / "results"
SATURATED_P99_MS = 2000.0


def say(text: str) -> None:
    print(text, flush=True)


@contextlib.contextmanager
def mock_service(*, delay_ms: int = 0) -> Iterator[tuple[str, int]]:
    """The mock downstream in a process of its own; yields its URL and pid."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.mock_service", "--delay-ms", str(delay_ms)],
        stdout=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        yield orjson.loads(process.stdout.readline())["url"], process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)


def system_names(plan: Plan) -> list[str]:
    names = [
        "direct-aiohttp",
        "direct-httpx",
        "orchestrator",
        f"orchestrator-{os.cpu_count() or 2}p",
        "orchestrator-kafka-step",
        "orchestrator-traced",
        "restate",
        "temporal",
        "temporal-local",
    ]
    return list(plan.systems) or names


def build_system(name: str, *, mock_url: str, bootstrap: str, plan: Plan) -> System:
    """The system called ``name``; peers are imported only when asked for."""
    if name == "direct-aiohttp":
        return DirectAiohttp(mock_url)
    if name == "direct-httpx":
        return DirectHttpx(mock_url)
    if name == "orchestrator":
        return OrchestratorSystem(mock_url, bootstrap=bootstrap)
    if name == "orchestrator-kafka-step":
        return OrchestratorSystem(mock_url, bootstrap=bootstrap, kafka_step=True)
    if name == "orchestrator-traced":
        # Tracing on, every request sampled, spans exported over OTLP/HTTP to the
        # mock service's sink: the cost of tracing against `orchestrator` (off).
        return OrchestratorSystem(
            mock_url,
            bootstrap=bootstrap,
            name=name,
            extra_env={
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{mock_url}/v1/traces",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
                "OTEL_SERVICE_NAME": "bench-orchestrator",
            },
        )
    if name.startswith("orchestrator-") and name.endswith("p"):
        return OrchestratorSystem(mock_url, bootstrap=bootstrap, processes=int(name[13:-1]))
    if name == "restate":
        from bench.systems.restate import RestateSystem

        return _peer(RestateSystem(mock_url), plan)
    if name in ("temporal", "temporal-local"):
        from bench.systems.temporal import TemporalSystem

        return _peer(TemporalSystem(mock_url, local_activities=name == "temporal-local"), plan)
    raise SystemExit(f"error: unknown system {name!r}; known: {', '.join(system_names(FULL))}.")


def _peer(system: Any, plan: Plan) -> System:
    # A quick run must not spend minutes installing or building a peer.
    if not plan.peers_required and hasattr(system, "installed") and not system.installed():
        raise SystemUnavailable(
            f"{system.name} is not installed yet (a full `make bench` installs it)"
        )
    return system  # type: ignore[no-any-return]


class Numbers:
    """Order numbers: every request of a run asks for a different order."""

    def __init__(self) -> None:
        self._next = itertools.count(1_000)

    def take(self, count: int) -> int:
        first = next(self._next)
        for _ in range(count - 1):
            next(self._next)
        return first


async def run_system(system: System, plan: Plan, numbers: Numbers) -> dict[str, Any]:
    """Every phase of the plan against one started system."""
    pids = system.pids()
    phases: dict[str, dict[str, float]] = {}
    result = await load.serial(
        system.run_one,
        pids=pids,
        requests=plan.serial_requests,
        first=numbers.take(plan.serial_requests),
        max_s=plan.serial_max_s,
    )
    figures = phases["serial"] = result.figures()
    say(f"    serial: p50 {figures['p50_ms']:.2f} ms, p99 {figures['p99_ms']:.2f} ms")
    for concurrency in plan.concurrencies:
        result = await load.closed_loop(
            system.run_one,
            pids=pids,
            requests=plan.closed_requests,
            concurrency=concurrency,
            first=numbers.take(plan.closed_requests),
            max_s=plan.closed_max_s,
        )
        figures = phases[f"closed-{concurrency}"] = result.figures()
        say(
            f"    {concurrency} clients: {figures['throughput_rps']:,.0f} req/s, "
            f"p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms, "
            f"{figures['cpu_ms_per_request']:.2f} CPU ms/request"
            + (f", {result.errors} errors ({result.first_error})" if result.errors else "")
        )
    best = max(
        (figures["throughput_rps"] for key, figures in phases.items() if key.startswith("closed")),
        default=0.0,
    )
    for rate in plan.open_rates:
        if rate > 2 * best:
            # Twice what it served with clients waiting: it can only saturate, and
            # its backlog would cost the run minutes. Recorded as not run.
            say(f"    open loop at {rate}/s: not run (over twice its closed-loop best)")
            break
        count = int(rate * plan.open_seconds)
        result = await load.open_loop(
            system.run_one,
            pids=pids,
            rate=rate,
            seconds=plan.open_seconds,
            first=numbers.take(count),
        )
        figures = phases[f"open-{rate}"] = result.figures()
        saturated = (
            result.completed < 0.98 * count
            or figures["throughput_rps"] < 0.85 * rate
            or figures["p99_ms"] > SATURATED_P99_MS
        )
        figures["saturated"] = float(saturated)
        say(
            f"    open loop at {rate}/s: p50 {figures['p50_ms']:.1f} ms, "
            f"p99 {figures['p99_ms']:.1f} ms" + (" (saturated)" if saturated else "")
        )
        if saturated:
            break
    return {"phases": phases, "peak_rss_mb": round(peak_rss_bytes(pids) / 2**20, 1)}


async def run_admission(
    *, mock_url: str, bootstrap: str, plan: Plan, numbers: Numbers
) -> dict[str, Any]:
    """Throughput of the orchestrator with many requests waiting at once."""
    out: dict[str, Any] = {}
    if not plan.admission_waiting:
        return out
    say("Admission: the orchestrator with 50 to 10,000 requests waiting at once...")
    system = OrchestratorSystem(mock_url, bootstrap=bootstrap, name="orchestrator-admission")
    await system.start()
    try:
        for waiting in plan.admission_waiting:
            requests = max(2 * waiting, 3000)
            result = await load.closed_loop(
                system.run_one,
                pids=system.pids(),
                requests=requests,
                concurrency=waiting,
                first=numbers.take(requests),
                max_s=plan.admission_max_s,
            )
            figures = out[str(waiting)] = result.figures()
            say(
                f"  {waiting:>6} waiting: {figures['throughput_rps']:,.0f} req/s, "
                f"{result.completed}/{result.requests} completed, {result.errors} failed, "
                f"p50 {figures['p50_ms']:.0f} ms, p99 {figures['p99_ms']:.0f} ms"
            )
    finally:
        await system.stop()
    return out


async def run_cache(
    *, mock_url: str, bootstrap: str, plan: Plan, numbers: Numbers
) -> dict[str, Any]:
    """Throughput with and without the step-result cache on users and stores."""
    from bench.systems.orchestrator import FLOWS

    if not (FLOWS / "order-details-cached.yaml").exists():
        return {}
    say("Step-result cache: users and stores repeat (50 users, 10 stores)...")
    out: dict[str, Any] = {}
    for name, flow in (("uncached", "order-details"), ("cached", "order-details-cached")):
        system = OrchestratorSystem(
            mock_url, bootstrap=bootstrap, flow=flow, name=f"orchestrator-{name}"
        )
        await system.start()
        try:
            calls_before = await _mock_calls(mock_url)
            result = await load.closed_loop(
                system.run_one,
                pids=system.pids(),
                requests=plan.cache_requests,
                concurrency=50,
                first=numbers.take(plan.cache_requests),
                max_s=30,
            )
            calls = {
                kind: count - calls_before.get(kind, 0)
                for kind, count in (await _mock_calls(mock_url)).items()
            }
        finally:
            await system.stop()
        figures = out[name] = result.figures() | {"downstream_calls": calls}
        say(
            f"  {name}: {figures['throughput_rps']:,.0f} req/s, p50 {figures['p50_ms']:.1f} ms, "
            f"downstream calls per request {sum(calls.values()) / max(result.completed, 1):.2f}"
        )
    return out


async def _mock_calls(mock_url: str) -> dict[str, int]:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(f"{mock_url}/stats") as response:
        calls: dict[str, int] = orjson.loads(await response.read())
        return calls


def host_info() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        memory_kb = int(Path("/proc/meminfo").read_text().split()[1])
    java = ""
    with contextlib.suppress(OSError):
        java = subprocess.run(
            ["java", "-version"], capture_output=True, text=True, check=False
        ).stderr.splitlines()[0]
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(memory_kb / 2**20, 1),
        "python": platform.python_version(),
        "java": java,
        "kafka": BrokerSettings().kafka_version,
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Medians over repeats of every figure, per system and phase."""
    by_system: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        if "phases" in run:
            by_system.setdefault(run["system"], []).append(run)
    summary: dict[str, dict[str, Any]] = {}
    for system, repeats in by_system.items():
        phases: dict[str, dict[str, float]] = {}
        for phase in {key for run in repeats for key in run["phases"]}:
            present = [run["phases"][phase] for run in repeats if phase in run["phases"]]
            phases[phase] = {
                key: round(statistics.median(figures[key] for figures in present), 3)
                for key in present[0]
            } | {"repeats": len(present)}
        summary[system] = {
            "phases": phases,
            "peak_rss_mb": statistics.median(run["peak_rss_mb"] for run in repeats),
            "repeats": len(repeats),
            "versions": repeats[-1]["versions"],
        }
    return summary


async def run(plan: Plan, bootstrap: str) -> dict[str, Any]:
    started = datetime.now(UTC).isoformat(timespec="seconds")
    say("Saga core: order-details sagas with canned replies, no I/O...")
    saga_core = core.run(5_000 if plan.name == "quick" else 20_000)
    per_s = saga_core["decisions_per_s"]
    say(f"  {saga_core['sagas_per_s']:,.0f} sagas/s, {per_s:,.0f} decisions/s")
    numbers = Numbers()
    runs: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    kafka_settings: dict[str, Any] = {}
    with mock_service() as (mock_url, _mock_pid):
        say(f"Mock service at {mock_url}.")
        say(
            f"Warming up the broker: {plan.warm_up_s:.0f} s through the orchestrator, unmeasured..."
        )
        warm = OrchestratorSystem(mock_url, bootstrap=bootstrap, name="orchestrator-warm-up")
        await warm.start()
        try:
            await load.closed_loop(
                warm.run_one,
                pids=warm.pids(),
                requests=100_000,
                concurrency=50,
                first=numbers.take(1),
                max_s=plan.warm_up_s,
            )
        finally:
            await warm.stop()
        for repeat in range(1, plan.repeats + 1):
            for name in system_names(plan):
                if name in skipped:
                    continue
                say(f"[{repeat}/{plan.repeats}] {name}: starting...")
                try:
                    system = build_system(name, mock_url=mock_url, bootstrap=bootstrap, plan=plan)
                    await system.start()
                except SystemUnavailable as error:
                    skipped[name] = str(error)
                    say(f"  {name}: skipped: {error}.")
                    continue
                try:
                    measured = await run_system(system, plan, numbers)
                    if isinstance(system, OrchestratorSystem):
                        kafka_settings = system.kafka_settings()
                    runs.append(
                        {"system": name, "repeat": repeat, "versions": system.versions()} | measured
                    )
                finally:
                    await system.stop()
        admission = await run_admission(
            mock_url=mock_url, bootstrap=bootstrap, plan=plan, numbers=numbers
        )
        cache = await run_cache(mock_url=mock_url, bootstrap=bootstrap, plan=plan, numbers=numbers)
    memory: dict[str, Any] = {}
    for count in plan.memory_in_flight:
        say(f"Memory: {count:,} sagas in flight on an unanswered Kafka step...")
        figures = memory[str(count)] = await in_flight_memory(bootstrap=bootstrap, count=count)
        say(
            f"  {figures['bytes_per_saga']:,} bytes per saga, longest GC pause "
            f"{figures['gc_longest_pause_ms']:.1f} ms ({figures['gc_collections']} collections)"
        )
    return {
        "plan": plan.name,
        "started": started,
        "host": host_info(),
        "kafka_client_settings": kafka_settings,
        "runs": runs,
        "skipped": skipped,
        "summary": summarise(runs),
        "admission": admission,
        "cache": cache,
        "memory": memory,
        "saga_core": saga_core,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the short run (under 3 minutes)")
    parser.add_argument("--systems", help="comma-separated system names (default: all)")
    parser.add_argument("--repeats", type=int, help="repeat each system this many times")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results go")
    arguments = parser.parse_args(argv)
    plan = QUICK if arguments.quick else FULL
    if arguments.systems:
        plan = _replace(plan, systems=tuple(arguments.systems.split(",")))
    if arguments.repeats:
        plan = _replace(plan, repeats=arguments.repeats)
    started = time.monotonic()
    say(f"Benchmark ({plan.name} run, {plan.repeats} repeat(s)): starting Kafka...")
    external = bootstrap_from_env()
    if external:
        results = _loop_run(run(plan, external))
    else:
        with (
            tempfile.TemporaryDirectory(prefix="bench-kafka-") as runtime,
            running_broker(BrokerSettings(port=0, runtime_dir=Path(runtime))) as broker,
        ):
            results = _loop_run(run(plan, broker.bootstrap))
    results["seconds"] = round(time.monotonic() - started, 1)
    paths = report.write(results, arguments.out)
    say("")
    say(report.table(results))
    say("")
    say("Written: " + ", ".join(str(path) for path in paths))
    return 0


def _replace(plan: Plan, **changes: Any) -> Plan:
    from dataclasses import replace

    return replace(plan, **changes)


def _loop_run(work: Any) -> dict[str, Any]:
    # The direct systems run inside the load generator, on the standard event loop:
    # the floor is plain asyncio, as the issue defines it.
    result: dict[str, Any] = asyncio.run(work)
    return result
