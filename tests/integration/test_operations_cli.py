"""Day-two commands over the real broker: ``status``, ``send`` from a file or stdin, and
the logs of ``orchestrator run`` on fresh topics (JSON lines, no start-up alarms)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from orchestrator.settings import CoordinatorSettings
from tests.integration.kafka_io import read_topic

pytestmark = pytest.mark.kafka

BIG = 210 * 1024
"""Larger than the 128 KiB one command-line argument may hold."""


def orchestrator(
    *arguments: str, env: dict[str, str], stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *arguments],
        input=stdin,
        capture_output=True,
        timeout=60,
        env=env,
        check=False,
    )


def spawn(*arguments: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start ``orchestrator ARGUMENTS`` in the background (stopped by the test, by pid)."""
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *arguments],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def holding_flows(folder: Path, command_topic: str) -> Path:
    """A flow whose one call goes to a Kafka service nobody serves: its saga stays in flight."""
    (folder / "services.yaml").write_text(
        f"services:\n  nobody: {{kind: kafka, command_topic: {command_topic}}}\n"
    )
    (folder / "hold.yaml").write_text(
        "name: hold\n"
        "defaults: {timeout_ms: 120000}\n"
        "steps:\n"
        "  wait: {service: nobody, operation: wait, input: {x: input.x}}\n"
        "result: wait\n"
    )
    return folder


async def status_until(
    env: dict[str, str], ready: Any, *, timeout_s: float = 45.0
) -> dict[str, Any]:
    """``orchestrator status --json`` until ``ready(status)`` holds."""
    deadline = time.monotonic() + timeout_s
    while True:
        completed = await asyncio.to_thread(orchestrator, "status", "--json", env=env)
        assert completed.returncode == 0, completed.stderr.decode()
        status: dict[str, Any] = orjson.loads(completed.stdout)
        if ready(status) or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.5)


async def test_status_shows_sagas_in_flight_lag_and_big_inputs_sent_from_file_and_stdin(
    settings: CoordinatorSettings, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings.replace(partitions=1, max_in_flight=1)
    env = {**os.environ, **settings.to_env()}
    flows = holding_flows(tmp_path, f"{topic_prefix}.nobody.commands")
    coordinator = spawn("--log-level", "info", "--log-format", "json", "run", str(flows), env=env)
    try:
        assert coordinator.stdout is not None
        banner = await asyncio.to_thread(coordinator.stdout.readline)
        assert banner.startswith(b"Coordinator running: 1 flow(s) (hold)"), banner

        big = {"x": "a" * BIG}
        input_file = tmp_path / "big.json"
        input_file.write_bytes(orjson.dumps(big))
        sent = [
            await asyncio.to_thread(orchestrator, "send", "hold", f"@{input_file}", env=env),
            await asyncio.to_thread(
                orchestrator, "send", "hold", "-", env=env, stdin=orjson.dumps(big)
            ),
            await asyncio.to_thread(
                orchestrator, "send", "hold", "--input-file", str(input_file), env=env
            ),
        ]
        for completed in sent:
            assert completed.returncode == 0, completed.stderr.decode()

        # One saga runs (max_in_flight=1, its call never answered); two requests wait.
        status = await status_until(
            env, lambda s: s["in_flight"] == 1 and sum(row["lag"] for row in s["lag"]) == 2
        )
    finally:
        coordinator.terminate()  # SIGTERM to its own pid
        _, errors = await asyncio.to_thread(coordinator.communicate, timeout=30)

    assert status["in_flight"] == 1
    [member] = status["members"]
    assert member["in_flight"] == 1
    assert member["partitions"][settings.request_topic] == [0]
    request_lag = [row for row in status["lag"] if row["topic"] == settings.request_topic]
    assert [(row["partition"], row["end"], row["lag"]) for row in request_lag] == [(0, 3, 2)]
    assert request_lag[0]["member"] == member["member_id"]
    topics = {topic["role"]: topic for topic in status["topics"]}
    assert topics["changelog"]["name"] == settings.changelog_topic
    assert {topic["partitions"] for topic in topics.values()} == {1}
    assert len(status["brokers"]) >= 1

    requests = await read_topic(settings.bootstrap_servers, settings.request_topic, expect=3)
    ids = {completed.stdout.decode().strip() for completed in sent}
    payloads = [orjson.loads(record.value) for record in requests]
    assert {payload["request_id"] for payload in payloads} == ids
    assert all(payload["input"] == big for payload in payloads)

    lines = errors.decode().splitlines()
    entries = [orjson.loads(line) for line in lines]  # every line is one JSON object
    assert entries, "at info level aiokafka logs its group joining"
    assert set(entries[0]) >= {"time", "level", "logger", "message"}
    alarms = [
        entry
        for entry in entries
        if entry["level"] in ("WARNING", "ERROR")
        and any(
            marker in entry["message"]
            for marker in ("Coordinator", "NotLeaderForPartition", "coordinator dead")
        )
    ]
    assert alarms == []
    assert coordinator.returncode == 0


def test_status_says_in_one_sentence_that_kafka_is_unreachable() -> None:
    completed = orchestrator("status", env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"})

    stderr = completed.stderr.decode()
    assert completed.returncode == 1
    assert stderr.startswith("error: cannot reach Kafka"), stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert "Traceback" not in stderr
