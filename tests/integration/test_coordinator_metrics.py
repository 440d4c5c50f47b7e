"""The coordinator's ``/metrics`` over HTTP, after sagas over the real broker: each
counter moved by exactly what the sagas did (success, retry, failure with a
compensation, a dead letter, a stray reply), and the gauges settle."""

from __future__ import annotations

import asyncio
import socket
import urllib.request
from http import HTTPStatus

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from contracts.base import SCHEMA_VERSION
from handlers.demo.http_server import RouteResult
from orchestrator.settings import CoordinatorSettings
from tests.integration.saga_flows import (
    FLOW,
    RESULT_TIMEOUT_S,
    Behaviour,
    Hit,
    RecordingServer,
    answer_ok,
    http_step,
    running,
    shop_registry,
    undo,
)

pytestmark = pytest.mark.kafka

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def scrape(port: int) -> Samples:
    def get() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body: bytes = response.read()
            return body.decode()

    text = await asyncio.to_thread(get)
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def flaky_charge() -> Behaviour:
    """503 on the first try of a ``retry`` order, then fine."""
    tried: set[str] = set()

    def charge(hit: Hit) -> RouteResult:
        if "retry" in hit.path and hit.path not in tried:
            tried.add(hit.path)
            return HTTPStatus.SERVICE_UNAVAILABLE, {"error": "busy"}
        return answer_ok(hit)

    return charge


def ship(hit: Hit) -> RouteResult:
    """409 for a ``bad`` order: the saga fails and releases its reservation."""
    if "bad" in hit.path:
        return HTTPStatus.CONFLICT, {"error": "no courier"}
    return answer_ok(hit)


async def test_metrics_count_what_sagas_did(settings: CoordinatorSettings) -> None:
    port = free_port()
    settings = settings.replace(metrics_port=port, metrics_host="127.0.0.1")
    with RecordingServer({"charge": flaky_charge(), "ship": ship}) as server:
        registry = shop_registry(
            server,
            {
                "reserve": http_step("reserve", compensate=undo("release", step="reserve")),
                "charge": http_step(
                    "charge", reads="reserve.id", retry={"attempts": 2, "backoff_ms": 10}
                ),
                "ship": http_step("ship", reads="charge.id"),
            },
        )
        async with running(settings, registry) as (coordinator, client):
            assert coordinator.metrics_port == port
            before = await scrape(port)
            assert value(before, "orchestrator_sagas_started_total", flow=FLOW) == 0
            results = [
                await client.run(FLOW, {"id": order}, request_id=order, timeout=RESULT_TIMEOUT_S)
                for order in ("ok-1", "retry-1", "bad-1")
            ]
            unknown = await client.run("no-such-flow", {}, timeout=RESULT_TIMEOUT_S)
            # A reply nobody waits for (a saga that never ran here): counted, ignored.
            producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
            await producer.start()
            try:
                stray = {
                    "schema_version": SCHEMA_VERSION,
                    "request_id": "ghost",
                    "correlation_id": "ghost:reserve:1",
                    "status": "ok",
                    "output": None,
                    "error": None,
                }
                await producer.send_and_wait(
                    settings.reply_topic, orjson.dumps(stray), key=b"ghost", partition=0
                )
            finally:
                await producer.stop()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + RESULT_TIMEOUT_S
            while True:
                after = await scrape(port)
                lag_seen = any(
                    name == "orchestrator_consumer_lag"
                    and ("topic", settings.request_topic) in labels
                    for name, labels in after
                )
                ignored = value(after, "orchestrator_ignored_replies_total", reason="unknown_saga")
                if (lag_seen and ignored) or loop.time() > deadline:
                    break
                await asyncio.sleep(0.2)

    assert [result["status"] for result in results] == ["completed", "completed", "failed"]
    assert unknown["status"] == "failed"
    assert value(after, "orchestrator_sagas_started_total", flow=FLOW) == 3
    assert (
        value(
            after,
            "orchestrator_sagas_finished_total",
            flow=FLOW,
            status="completed",
            complete="true",
        )
        == 2
    )
    assert (
        value(
            after, "orchestrator_sagas_finished_total", flow=FLOW, status="failed", complete="false"
        )
        == 1
    )
    assert (
        value(after, "orchestrator_saga_duration_seconds_count", flow=FLOW, status="completed") == 2
    )
    assert value(after, "orchestrator_sagas_in_flight") == 0
    # charge: ok-1 once, retry-1 twice (503, then 200), bad-1 once.
    assert value(after, "orchestrator_retries_total", flow=FLOW, step="charge") == 1
    assert (
        value(after, "orchestrator_call_duration_seconds_count", service="shop", operation="charge")
        == 4
    )
    assert (
        value(
            after,
            "orchestrator_call_errors_total",
            service="shop",
            operation="charge",
            code="http.503",
        )
        == 1
    )
    assert (
        value(
            after,
            "orchestrator_call_errors_total",
            service="shop",
            operation="ship",
            code="http.409",
        )
        == 1
    )
    # bad-1 released its reservation: one compensation, of step reserve.
    assert value(after, "orchestrator_compensations_total", flow=FLOW, step="reserve") == 1
    assert [hit.operation for hit in server.of("release")] == ["release"]
    assert value(after, "orchestrator_dead_letters_total", code="flow.unknown") == 1
    assert value(after, "orchestrator_ignored_replies_total", reason="unknown_saga") == 1
    for number in range(settings.partitions):
        assert (
            value(
                after,
                "orchestrator_consumer_lag",
                topic=settings.request_topic,
                partition=str(number),
            )
            == 0
        )
    # No label carries a request id.
    assert not any("ok-1" in str(labels) for _, labels in after)
