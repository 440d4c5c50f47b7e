"""The benchmark harness itself: load generators, checks, medians and reports.

A fake system stands in for the real ones (the harness's figures about real systems
come from ``make bench``, never from a test)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson

from bench import load, report
from bench.run import summarise


async def correct(number: int) -> dict[str, Any]:
    await asyncio.sleep(0.001)
    return load.expected(number)


async def wrong(number: int) -> dict[str, Any]:
    return {"order_id": f"o-{number}"}


async def failing(number: int) -> dict[str, Any]:
    raise RuntimeError("downstream said no")


def test_the_expected_composition_follows_the_mock_services_data() -> None:
    result = load.expected(7)
    assert result["order_id"] == "o-7"
    assert result["customer"] == {"name": "User 7", "email": "user7@example.com"}
    assert len(result["lines"]) == 5
    assert result["total"] == round(sum(line["line_total"] for line in result["lines"]), 2)


async def test_closed_loop_counts_completed_wrong_and_failed_requests() -> None:
    good = await load.closed_loop(correct, pids=[], requests=64, concurrency=8, first=0)
    bad = await load.closed_loop(wrong, pids=[], requests=64, concurrency=8, first=0)
    broken = await load.closed_loop(failing, pids=[], requests=10, concurrency=2, first=0)
    assert (good.completed, good.wrong, good.errors) == (64, 0, 0)
    assert bad.wrong == 4  # one in 16 is checked
    assert (broken.completed, broken.errors) == (0, 10)
    assert broken.first_error == "RuntimeError: downstream said no"
    assert good.figures()["throughput_rps"] > 0


async def test_phases_stop_at_their_time_bound() -> None:
    async def slow(number: int) -> dict[str, Any]:
        await asyncio.sleep(0.05)
        return load.expected(number)

    result = await load.serial(slow, pids=[], requests=1_000, first=0, max_s=0.2)
    assert 2 <= result.requests <= 6


async def test_open_loop_charges_queueing_to_the_system_that_falls_behind() -> None:
    gate = asyncio.Lock()

    async def one_at_a_time(number: int) -> dict[str, Any]:
        async with gate:
            await asyncio.sleep(0.01)  # 100/s at most
        return load.expected(number)

    result = await load.open_loop(one_at_a_time, pids=[], rate=400, seconds=0.25, first=0)
    # Latency is counted from when each request was due, so the queue shows.
    assert result.completed == 100
    assert load.percentile(result.latencies_ms, 0.99) > 500


def test_medians_over_repeats_and_the_written_report(tmp_path: Path) -> None:
    def run(system: str, repeat: int, p50: float, rps: float) -> dict[str, Any]:
        figures = {
            "p50_ms": p50,
            "p99_ms": p50 * 2,
            "throughput_rps": rps,
            "cpu_ms_per_request": 1.0,
        }
        return {
            "system": system,
            "repeat": repeat,
            "versions": {},
            "peak_rss_mb": 50.0,
            "phases": {"serial": figures, "closed-50": figures},
        }

    runs = [
        run("direct-aiohttp", 1, 1.0, 1000),
        run("direct-aiohttp", 2, 3.0, 900),
        run("direct-aiohttp", 3, 2.0, 1100),
        run("orchestrator", 1, 9.0, 500),
    ]
    summary = summarise(runs)
    assert summary["direct-aiohttp"]["phases"]["serial"]["p50_ms"] == 2.0
    assert summary["direct-aiohttp"]["phases"]["closed-50"]["throughput_rps"] == 1000
    assert summary["direct-aiohttp"]["repeats"] == 3
    results = {
        "plan": "test",
        "started": "2026-12-02T00:00:00+00:00",
        "seconds": 1.0,
        "host": {
            "cpu": "x",
            "cores": 2,
            "memory_gb": 1,
            "python": "3",
            "java": "j",
            "kafka": "4",
            "platform": "p",
        },
        "kafka_client_settings": {},
        "runs": runs,
        "skipped": {"temporal": "no Go"},
        "summary": summary,
        "admission": {},
        "cache": {},
        "memory": {},
    }
    text = report.table(results)
    assert "orchestrator" in text
    assert "0.50" in text  # 500 / 1000 of the floor at 50 clients
    assert "temporal: skipped: no Go." in text
    paths = report.write(results, tmp_path)
    assert orjson.loads(paths[0].read_bytes())["summary"] == summary
    assert "| orchestrator |" in paths[1].read_text()
