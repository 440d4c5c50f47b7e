"""SIGTERM with 10,000 sagas in flight: the process stops promptly, having recorded
every saga, and the next instance resumes all of them from the changelog."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from contracts import cloudevents
from contracts.base import SCHEMA_VERSION
from orchestrator.flow_files import load_flows
from orchestrator.runtime.coordinator import SagaCoordinator
from orchestrator.runtime.topics import check_topics
from orchestrator.settings import CoordinatorSettings
from tests.integration.kafka_io import committed_offsets
from tests.integration.test_crash_points import coordinator_env

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(240)]

SAGAS = 10_000
STOP_BOUND_S = 60
"""Generous; the bug this guards against took more than two minutes."""


def write_flows(folder: Path, command_topic: str) -> Path:
    """One call to a Kafka adapter nobody serves: every saga waits for its reply."""
    folder.mkdir()
    (folder / "services.yaml").write_text(
        json.dumps(
            {
                "schema_version": 1,
                "services": {"silent": {"kind": "kafka", "command_topic": command_topic}},
            }
        )
    )
    (folder / "wait.json").write_text(
        json.dumps(
            {
                "schema_version": 1,
                "name": "wait",
                "defaults": {"timeout_ms": 600_000, "retry": {"attempts": 1}},
                "steps": {
                    "call": {"service": "silent", "operation": "op", "input": {"id": "input.id"}}
                },
                "result": "call",
            }
        )
    )
    return folder


async def publish_many(settings: CoordinatorSettings, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=20)
    await producer.start()
    try:
        deliveries = []
        for n in range(count):
            request_id = f"w-{n}"
            payload = {
                "schema_version": SCHEMA_VERSION,
                "request_id": request_id,
                "flow": "wait",
                "input": {"id": request_id},
            }
            headers = cloudevents.build_headers(
                event_id=request_id,
                event_type=cloudevents.TYPE_REQUEST,
                source="urn:test",
                time_ms=time.time_ns() // 1_000_000,
            )
            deliveries.append(
                await producer.send(
                    settings.request_topic,
                    value=orjson.dumps(payload),
                    key=request_id.encode(),
                    headers=headers,
                )
            )
        await asyncio.gather(*deliveries)
    finally:
        await producer.stop()


async def test_sigterm_with_ten_thousand_sagas_in_flight_stops_and_a_restart_resumes_them(
    settings: CoordinatorSettings, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings.replace(group_instance_id="graceful-1", max_in_flight=2 * SAGAS)
    # Created before anything is published (the broker would create the request topic
    # with one partition).
    await check_topics(
        settings.bootstrap_servers,
        dict.fromkeys(
            (
                settings.request_topic,
                settings.reply_topic,
                settings.result_topic,
                settings.dead_letter_topic,
                f"{topic_prefix}.silent",
            ),
            settings.partitions,
        ),
    )
    await check_topics(
        settings.bootstrap_servers,
        {settings.changelog_topic: settings.partitions},
        compacted=(settings.changelog_topic,),
    )
    folder = write_flows(tmp_path / "flows", f"{topic_prefix}.silent")
    env = {**coordinator_env(settings, crash_at=""), "ORCH_MAX_IN_FLIGHT": str(2 * SAGAS)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from orchestrator.cli import main; main()",
        "run",
        str(folder),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await publish_many(settings, SAGAS)
        # Every request's start is recorded once its offset is committed.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            committed = await committed_offsets(
                settings.bootstrap_servers, settings.group_id, settings.request_topic
            )
            if sum(offset or 0 for offset in committed.values()) == SAGAS:
                break
            await asyncio.sleep(0.5)
        assert sum(offset or 0 for offset in committed.values()) == SAGAS

        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), timeout=STOP_BOUND_S)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert code == 0

    registry = load_flows(folder)
    async with SagaCoordinator(registry=registry, settings=settings) as coordinator:
        await asyncio.wait_for(coordinator.assigned.wait(), timeout=60)
        assert coordinator.restored_sagas == SAGAS
        assert coordinator.in_flight == SAGAS
