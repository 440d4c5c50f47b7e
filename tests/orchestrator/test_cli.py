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
    assert "ok: flow 'order-details' (5 steps)" in completed.stdout


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
