"""``orchestrator run --processes N``: N coordinators in one group answer every request
once; a signal stops them all; a child that dies takes the set down with status 1."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from orchestrator.client import OrchestratorClient
from orchestrator.settings import CoordinatorSettings
from tests.integration.saga_flows import RecordingServer
from tests.integration.test_crash_points import coordinator_env, write_flows

pytestmark = pytest.mark.kafka


async def start_set(
    folder: Path, settings: CoordinatorSettings, *, keep_stderr: bool = False
) -> tuple[asyncio.subprocess.Process, list[int]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "orchestrator",
        "run",
        str(folder),
        "--processes",
        "2",
        env=coordinator_env(settings, crash_at=""),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE if keep_stderr else asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), timeout=30)).decode()
    found = re.search(r"Started 2 coordinator processes \(pids (\d+), (\d+)\)", line)
    assert found, line
    return process, [int(pid) for pid in found.groups()]


async def group_members(settings: CoordinatorSettings) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        [described] = await admin.describe_consumer_groups([settings.group_id])
        groups = described.to_object()["groups"]
        return len(groups[0]["members"])
    finally:
        await admin.close()


async def test_two_processes_share_the_work_and_stop_on_a_signal(
    settings: CoordinatorSettings, tmp_path: Path
) -> None:
    settings = settings.replace(group_instance_id="procs")
    with RecordingServer() as server:
        folder = write_flows(tmp_path / "flows", server.url)
        process, _ = await start_set(folder, settings)
        try:
            async with OrchestratorClient(settings) as client:
                results = [
                    await client.run("buy", {"id": str(n)}, request_id=f"p-{n}", timeout_s=60)
                    for n in range(10)
                ]
            # The first process may answer everything before the second has joined:
            # wait (boundedly) for both to be members.
            members = await group_members(settings)
            for _ in range(60):
                if members == 2:
                    break
                await asyncio.sleep(0.5)
                members = await group_members(settings)
            process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), timeout=60)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

    assert [result["status"] for result in results] == ["completed"] * 10
    assert members == 2
    assert code == 0


async def test_a_child_that_dies_stops_the_set_with_status_one(
    settings: CoordinatorSettings, tmp_path: Path
) -> None:
    with RecordingServer() as server:
        folder = write_flows(tmp_path / "flows", server.url)
        process, pids = await start_set(folder, settings, keep_stderr=True)
        try:
            await asyncio.sleep(3)
            os.kill(pids[0], signal.SIGKILL)
            code = await asyncio.wait_for(process.wait(), timeout=60)
            assert process.stderr is not None
            said = (await process.stderr.read()).decode()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

    assert code == 1
    assert "A coordinator process ended by itself" in said
