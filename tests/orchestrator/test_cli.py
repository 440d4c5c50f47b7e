"""The command line: real subprocesses, real exit codes, sentences instead of tracebacks."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from handlers.demo.services import DemoHttpServices
from orchestrator.flow_files import FlowRegistry
from orchestrator.runtime.coordinator import SagaCoordinator
from orchestrator.settings import CoordinatorSettings

DEMO_FLOWS = Path(__file__).parents[2] / "handlers" / "demo" / "flows"


def orchestrator(
    *arguments: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *arguments],
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_check_accepts_the_demo_flows() -> None:
    completed = orchestrator("check", str(DEMO_FLOWS))

    assert completed.returncode == 0, completed.stderr
    assert "ok: flow 'order-details' version 1 (5 steps)" in completed.stdout


def test_check_prints_warnings_and_still_succeeds(tmp_path: Path) -> None:
    (tmp_path / "services.yaml").write_text("services:\n  svc: {kind: kafka}\n")
    flow = tmp_path / "unread.yaml"
    flow.write_text(
        "name: unread\n"
        "version: 4\n"
        "steps:\n"
        "  a: {service: svc, operation: op, input: {x: input.x}}\n"
        "  leftover: {service: svc, operation: op, input: {x: input.x}}\n"
        "result: a\n"
    )

    completed = orchestrator("check", str(flow))

    assert completed.returncode == 0, completed.stderr
    assert "ok: flow 'unread' version 4 (2 steps)" in completed.stdout
    assert f"warning: {flow}: step 'leftover': nobody reads its output" in completed.stdout
    assert "step 'a'" not in completed.stdout


def test_check_rejects_a_cycle_naming_file_and_steps(tmp_path: Path) -> None:
    (tmp_path / "services.yaml").write_text("services:\n  svc: {kind: kafka}\n")
    flow = tmp_path / "loop.yaml"
    flow.write_text(
        "name: loop\n"
        "steps:\n"
        "  a: {service: svc, operation: op, input: {x: b.x}}\n"
        "  b: {service: svc, operation: op, input: {x: a.x}}\n"
        "result: a\n"
    )

    completed = orchestrator("check", str(flow))

    assert completed.returncode == 1
    assert completed.stderr.startswith("error: ")
    assert str(flow) in completed.stderr
    assert "cycle: a -> b -> a" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_check_reports_a_missing_path_in_a_sentence(tmp_path: Path) -> None:
    completed = orchestrator("check", str(tmp_path / "nowhere"))

    assert completed.returncode == 1
    assert "does not exist" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_send_rejects_input_that_is_not_json() -> None:
    completed = orchestrator("send", "order-details", "{order_id: o-1}")

    assert completed.returncode == 1
    assert "not valid JSON" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_send_reports_an_unreachable_broker() -> None:
    completed = orchestrator(
        "send",
        "order-details",
        '{"order_id": "o-1"}',
        env={"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"},
    )

    assert completed.returncode == 1
    assert "cannot reach Kafka" in completed.stderr
    assert "Traceback" not in completed.stderr


@pytest.mark.kafka
async def test_send_wait_prints_the_result_event(
    settings: CoordinatorSettings,
    demo_services: DemoHttpServices,
    demo_registry: FlowRegistry,
    inventory_worker: None,
) -> None:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "ORCH_REQUEST_TOPIC": settings.request_topic,
        "ORCH_RESULT_TOPIC": settings.result_topic,
    }
    async with SagaCoordinator(registry=demo_registry, settings=settings):
        completed = await asyncio.to_thread(
            orchestrator,
            "send",
            "order-details",
            '{"order_id": "o-404"}',
            "--wait",
            "--request-id",
            "cli-1",
            env=env,
        )

    result = orjson.loads(completed.stdout)
    assert completed.returncode == 3, "a failed result exits with 3"
    assert result["request_id"] == "cli-1"
    assert result["errors"][0]["adapter_code"] == "http.404"


def spawn(*arguments: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """Start ``orchestrator ARGUMENTS`` in the background (stopped by the test, by pid)."""
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", *arguments],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.kafka
async def test_run_and_adapter_commands_serve_requests_until_terminated(
    settings: CoordinatorSettings, demo_services: DemoHttpServices, topic_prefix: str
) -> None:
    from orchestrator.client import OrchestratorClient

    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "ORCH_REQUEST_TOPIC": settings.request_topic,
        "ORCH_REPLY_TOPIC": settings.reply_topic,
        "ORCH_RESULT_TOPIC": settings.result_topic,
        "ORCH_DEAD_LETTER_TOPIC": settings.dead_letter_topic,
        "ORCH_GROUP_ID": settings.group_id,
    }
    command_topic = f"{topic_prefix}.inventory.commands"
    adapter = spawn(
        "adapter",
        "handlers.demo.inventory:inventory",
        "--command-topic",
        command_topic,
        "--group-id",
        f"{topic_prefix}.inventory",
        env=env,
    )
    coordinator = spawn("run", str(DEMO_FLOWS), env=env)
    try:
        assert coordinator.stdout is not None
        banner = await asyncio.to_thread(coordinator.stdout.readline)
        assert banner.startswith("Coordinator running: 2 flow(s) (order-details, place-order)")
        async with OrchestratorClient(settings) as client:
            result = await client.run("order-details", {"order_id": "o-1"}, timeout_s=60)
    finally:
        for process in (coordinator, adapter):
            process.terminate()  # SIGTERM to its own pid
        outputs = [
            await asyncio.to_thread(process.communicate, timeout=30)
            for process in (coordinator, adapter)
        ]

    assert result["status"] == "completed"
    assert result["data"]["total"] == 61.0
    assert coordinator.returncode == 0, outputs[0][1]
    assert "Coordinator stopped." in outputs[0][0]
    assert adapter.returncode == 0, outputs[1][1]


def test_broker_status_says_when_nothing_runs(tmp_path: Path) -> None:
    completed = orchestrator("broker", "status", "--port", "9", env={"ORCH_HOME": str(tmp_path)})

    assert completed.returncode == 1
    assert completed.stdout.strip() == "No Kafka broker is running on 127.0.0.1:9."
