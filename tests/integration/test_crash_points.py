"""Every dangerous window, forced: a coordinator process killed (SIGKILL) at a named
crash point, then a new instance with the same static member id.

After the restart: every request has exactly one result record, nothing is lost,
compensations that were due ran, and a downstream call is only ever repeated as a
re-issue with the same idempotency key. The restarted member gets its partitions
back at once (static membership), not after the killed member's session expires.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from orchestrator.client import OrchestratorClient
from orchestrator.flow_files import load_flows
from orchestrator.runtime.coordinator import SagaCoordinator
from orchestrator.settings import CoordinatorSettings
from tests.integration.kafka_io import read_topic
from tests.integration.saga_flows import Hit, RecordingServer, answer_ok, answer_status

pytestmark = pytest.mark.kafka

REQUESTS = 6
SESSION_TIMEOUT_MS = 45_000
"""Long on purpose: a restart that waited for the killed member's session to expire
would miss the assignment bound below."""


def slow_ok(hit: Hit) -> Any:
    time.sleep(0.05)
    return answer_ok(hit)


def write_flows(folder: Path, base_url: str) -> Path:
    """reserve (undone by release) -> charge (undone by refund) -> ship."""
    folder.mkdir()
    operations = ["reserve", "release", "charge", "refund", "ship"]
    (folder / "services.yaml").write_text(
        json.dumps(
            {
                "schema_version": 1,
                "services": {
                    "shop": {
                        "kind": "http",
                        "allow": {"loopback": True},
                        "base_url": base_url,
                        "operations": {
                            name: {"method": "POST", "path": f"/{name}/{{id}}"}
                            for name in operations
                        },
                    }
                },
            }
        )
    )
    retry_once = {"attempts": 1}
    (folder / "buy.json").write_text(
        json.dumps(
            {
                "schema_version": 1,
                "name": "buy",
                "version": 2,
                "defaults": {"timeout_ms": 5_000, "retry": retry_once},
                "steps": {
                    "reserve": {
                        "service": "shop",
                        "operation": "reserve",
                        "input": {"id": "input.id"},
                        "compensate": {"operation": "release", "input": {"id": "reserve.id"}},
                    },
                    "charge": {
                        "service": "shop",
                        "operation": "charge",
                        "input": {"id": "reserve.id"},
                        "compensate": {"operation": "refund", "input": {"id": "charge.id"}},
                    },
                    "ship": {
                        "service": "shop",
                        "operation": "ship",
                        "input": {"id": "charge.id"},
                    },
                },
                "result": {"shipped": "ship.id"},
            }
        )
    )
    return folder


def coordinator_env(
    settings: CoordinatorSettings, crash_at: str, *, changelog_delay_ms: int = 50
) -> dict[str, str]:
    child = settings.replace(
        commit_interval_ms=50, crash_at=crash_at, changelog_delay_ms=changelog_delay_ms
    )
    return {**os.environ, **child.to_env()}


@pytest.fixture
def static_settings(settings: CoordinatorSettings) -> CoordinatorSettings:
    return settings.replace(group_instance_id="crash-test-1", session_timeout_ms=SESSION_TIMEOUT_MS)


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    with RecordingServer({"reserve": slow_ok, "charge": slow_ok}) as recording:
        yield recording


async def run_until_crash(
    folder: Path,
    settings: CoordinatorSettings,
    crash_at: str,
    request_ids: list[str],
    *,
    changelog_delay_ms: int = 50,
) -> int:
    """Start a coordinator process armed to crash, send requests, return its exit code."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from orchestrator.cli import main; main()",
        "run",
        str(folder),
        env=coordinator_env(settings, crash_at, changelog_delay_ms=changelog_delay_ms),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with OrchestratorClient(settings) as client:
            for request_id in request_ids:
                await client.send("buy", {"id": request_id}, request_id=request_id)
        return await asyncio.wait_for(process.wait(), timeout=60)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGKILL)
            await process.wait()


async def restart_and_collect(
    folder: Path, settings: CoordinatorSettings, request_ids: list[str]
) -> tuple[dict[str, list[dict[str, Any]]], float]:
    """Run a fresh instance until every request has a result; results by request id."""
    registry = load_flows(folder)
    started = time.monotonic()
    async with SagaCoordinator(registry=registry, settings=settings) as coordinator:
        await asyncio.wait_for(coordinator.assigned.wait(), timeout=60)
        assigned_after = time.monotonic() - started
        records = await read_topic(
            settings.bootstrap_servers,
            settings.result_topic,
            expect=len(request_ids),
            timeout_s=60,
            settle_s=2,
        )
    results: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for record in records:
        result = orjson.loads(record.value)
        results[result["request_id"]].append(result)
    return results, assigned_after


def calls_per_key(server: RecordingServer) -> collections.Counter[str | None]:
    return collections.Counter(hit.key for hit in server.hits)


@pytest.mark.parametrize(
    "crash_at", ["after-log-before-commit", "after-reply-before-log", "after-result-before-log"]
)
@pytest.mark.parametrize(
    "changelog_delay_ms",
    [
        pytest.param(50, id="write-behind"),
        # Longer than a saga: nothing but finished markers is ever written, so every
        # crash falls while the sagas' starts and events exist only in memory.
        pytest.param(10_000, id="nothing-written-yet"),
    ],
)
async def test_a_crash_in_a_window_loses_nothing_and_duplicates_no_result(
    crash_at: str,
    changelog_delay_ms: int,
    static_settings: CoordinatorSettings,
    server: RecordingServer,
    tmp_path: Path,
) -> None:
    folder = write_flows(tmp_path / "flows", server.url)
    request_ids = [f"{crash_at}-{changelog_delay_ms}-{n}" for n in range(REQUESTS)]

    code = await run_until_crash(
        folder, static_settings, crash_at, request_ids, changelog_delay_ms=changelog_delay_ms
    )
    assert code == -signal.SIGKILL, "the process must have died at its crash point"
    results, assigned_after = await restart_and_collect(folder, static_settings, request_ids)

    assert sorted(results) == sorted(request_ids), "no request lost"
    assert {rid: len(found) for rid, found in results.items()} == dict.fromkeys(request_ids, 1)
    assert {found[0]["status"] for found in results.values()} == {"completed"}
    assert {found[0]["flow_version"] for found in results.values()} == {2}
    # Every call made, at most once more as a re-issue with the same key.
    keys = calls_per_key(server)
    expected_keys = {
        f"{rid}:{step}" for rid in request_ids for step in ("reserve", "charge", "ship")
    }
    assert set(keys) == expected_keys
    assert max(keys.values()) <= 2
    assert assigned_after < SESSION_TIMEOUT_MS / 1000 / 2, (
        "static membership: the restarted member is assigned without waiting for the "
        "killed member's session to expire"
    )


async def test_a_crash_mid_compensation_still_undoes_everything_once(
    static_settings: CoordinatorSettings, tmp_path: Path
) -> None:
    behaviours = {"reserve": slow_ok, "ship": answer_status(400, "no carrier")}
    with RecordingServer(behaviours) as server:
        folder = write_flows(tmp_path / "flows", server.url)
        request_ids = [f"undo-{n}" for n in range(REQUESTS)]

        code = await run_until_crash(folder, static_settings, "mid-compensation", request_ids)
        assert code == -signal.SIGKILL
        results, _ = await restart_and_collect(folder, static_settings, request_ids)

    assert {rid: len(found) for rid, found in results.items()} == dict.fromkeys(request_ids, 1)
    for [result] in results.values():
        assert result["status"] == "failed", result
        steps = {step["step"]: step["status"] for step in result["steps"]}
        assert steps == {"reserve": "compensated", "charge": "compensated", "ship": "failed"}
    keys = calls_per_key(server)
    for request_id in request_ids:
        # Each compensation ran (at least once, at most re-issued once), after its step.
        assert 1 <= keys[f"{request_id}:reserve:compensate"] <= 2
        assert 1 <= keys[f"{request_id}:charge:compensate"] <= 2
        assert keys[f"{request_id}:ship"] == 1
