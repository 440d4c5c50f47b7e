"""A downstream that hangs, or a Kafka adapter that never answers, fails the request
with step.timeout: exactly one result, never zero."""

from __future__ import annotations

import threading
from http import HTTPStatus

import pytest

from handlers.demo.http_server import HttpCall, JsonHttpServer, RouteResult
from orchestrator.client import OrchestratorClient
from orchestrator.runtime.coordinator import SagaCoordinator
from orchestrator.settings import CoordinatorSettings
from tests.integration.flows import single_call_registry
from tests.integration.kafka_io import read_topic

pytestmark = pytest.mark.kafka


async def test_hanging_http_downstream_times_out(settings: CoordinatorSettings) -> None:
    release = threading.Event()

    def hang(call: HttpCall) -> RouteResult:
        release.wait(timeout=30)
        return HTTPStatus.OK, {"late": True}

    with JsonHttpServer(hang) as server:
        registry = single_call_registry(base_url=server.url, timeout_ms=500)
        try:
            async with (
                SagaCoordinator(registry=registry, settings=settings),
                OrchestratorClient(settings) as client,
            ):
                result = await client.run("one-call", {"id": "x"}, timeout_s=60)
        finally:
            release.set()

    assert result["status"] == "failed"
    [error] = result["errors"]
    assert error["code"] == "step.timeout"
    assert error["step"] == "call"
    assert "within 500 ms" in error["message"]


async def test_silent_kafka_adapter_times_out(
    settings: CoordinatorSettings, topic_prefix: str
) -> None:
    # Nobody consumes this command topic: only the coordinator's deadline ends the saga.
    registry = single_call_registry(
        base_url="http://127.0.0.1:9",
        timeout_ms=700,
        service="silent",
        extra_services={"silent": {"kind": "kafka", "command_topic": f"{topic_prefix}.silent"}},
    )
    async with (
        SagaCoordinator(registry=registry, settings=settings),
        OrchestratorClient(settings) as client,
    ):
        result = await client.run("one-call", {"id": "x"}, timeout_s=60)
        results = await read_topic(
            settings.bootstrap_servers, settings.result_topic, expect=1, settle_s=1.5
        )

    assert result["status"] == "failed"
    [error] = result["errors"]
    assert error["code"] == "step.timeout"
    assert "within 700 ms" in error["message"]
    assert len(results) == 1, "a timed-out request still gets exactly one result"


async def test_downstream_5xx_fails_with_technical_error(settings: CoordinatorSettings) -> None:
    def broken(call: HttpCall) -> RouteResult:
        return HTTPStatus.SERVICE_UNAVAILABLE, {"error": "maintenance"}

    with JsonHttpServer(broken) as server:
        registry = single_call_registry(base_url=server.url)
        async with (
            SagaCoordinator(registry=registry, settings=settings),
            OrchestratorClient(settings) as client,
        ):
            result = await client.run("one-call", {"id": "x"}, timeout_s=60)

    [error] = result["errors"]
    assert (result["status"], error["code"], error["adapter_code"]) == (
        "failed",
        "step.technical_error",
        "http.503",
    )
    assert error["message"].endswith("GET answered 503 Service Unavailable")
    assert "maintenance" not in error["message"]  # the downstream's body stays out
