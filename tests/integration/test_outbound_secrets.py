"""Secrets and internal addresses stay out of every output, and request ids of any
text reach HTTP services (over the real broker)."""

from __future__ import annotations

import logging
import socket
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import pytest

from contracts.flow import RetryPolicy
from handlers.demo.http_server import HttpCall, JsonHttpServer, RouteResult
from orchestrator.builder import FlowBuilder
from orchestrator.catalog import catalog_from_data
from orchestrator.client import OrchestratorClient
from orchestrator.flow import compile_flow
from orchestrator.flow_files import FlowRegistry
from orchestrator.runtime.coordinator import SagaCoordinator
from orchestrator.settings import CoordinatorSettings
from tests.integration.kafka_io import read_topic

pytestmark = pytest.mark.kafka

USERINFO_SECRET = "pw-in-url-7f3a"
HEADER_SECRET = "bearer-from-env-91c2"
QUERY_SECRET = "query-key-from-env-5d0e"
BODY_SECRET = "downstream-body-secret-c4b8"
SECRETS = (USERINFO_SECRET, HEADER_SECRET, QUERY_SECRET, BODY_SECRET)


def downstream(call: HttpCall) -> RouteResult:
    """Fails in a different way on each path, leaking every secret it can."""
    head = call.segments[0]
    leak = {"error": f"{BODY_SECRET} {call.headers.get('authorization')} {call.query}"}
    if head == "charge":
        return HTTPStatus.PAYMENT_REQUIRED, leak
    if head == "flaky":
        return HTTPStatus.SERVICE_UNAVAILABLE, leak
    if head == "moved":
        return HTTPStatus.FOUND, {}, {"Location": f"http://10.0.0.7/?k={BODY_SECRET}"}
    return HTTPStatus.OK, {"id": head}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def registry_for(server_url: str) -> FlowRegistry:
    with_userinfo = server_url.replace("http://", f"http://admin:{USERINFO_SECRET}@")
    operations = {
        name: {"method": "POST", "path": f"/{name}/{{id}}", "query": {"key": "${PAY_KEY}"}}
        for name in ("charge", "flaky", "moved")
    }
    services: dict[str, Any] = {
        "payments": {
            "kind": "http",
            "allow": {"loopback": True},
            "base_url": server_url,
            "headers": {"Authorization": "Bearer ${PAY_TOKEN}"},
            "operations": operations,
        },
        "vault": {
            "kind": "http",
            "allow": {"loopback": True},
            "base_url": with_userinfo,
            "operations": {"charge": operations["charge"]},
        },
        "gone": {
            "kind": "http",
            "allow": {"loopback": True},
            "base_url": f"http://admin:{USERINFO_SECRET}@127.0.0.1:{closed_port()}",
            "operations": {"charge": operations["charge"]},
        },
        "internal": {  # no allowance: refused before connecting
            "kind": "http",
            "base_url": with_userinfo,
            "operations": {"charge": operations["charge"]},
        },
    }
    catalog = catalog_from_data(
        {"services": services},
        source="test catalog",
        environ={"PAY_TOKEN": HEADER_SECRET, "PAY_KEY": QUERY_SECRET},
    )
    flows = {}
    for name, (service, operation) in {
        "pay-402": ("payments", "charge"),
        "pay-503": ("payments", "flaky"),
        "pay-302": ("payments", "moved"),
        "vault-402": ("vault", "charge"),
        "gone": ("gone", "charge"),
        "internal": ("internal", "charge"),
    }.items():
        builder = FlowBuilder(name)
        builder.step(
            "pay",
            service=service,
            operation=operation,
            input={"id": "input.id"},
            retry=RetryPolicy(attempts=2, backoff_ms=10),
        )
        builder.result({"paid": "pay"})
        flow = compile_flow(builder.build(), catalog=catalog)
        flows[flow.name] = flow
    return FlowRegistry(flows=flows, catalog=catalog)


EXPECTED_CODES = {
    "pay-402": "http.402",
    "pay-503": "http.503",
    "pay-302": "http.302",
    "vault-402": "http.402",
    "gone": "http.unreachable",
    "internal": "http.address_refused",
}


async def test_no_secret_reaches_any_topic_or_log(
    settings: CoordinatorSettings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with JsonHttpServer(downstream) as server:
        async with (
            SagaCoordinator(registry=registry_for(server.url), settings=settings),
            OrchestratorClient(settings) as client,
        ):
            results = {
                flow: await client.run(flow, {"id": f"{flow}-1"}, timeout_s=60)
                for flow in EXPECTED_CODES
            }
        # The downstream did receive the secrets: the test would prove nothing otherwise.
        received = " ".join(f"{call.headers} {call.query}" for call in server.calls)
        assert HEADER_SECRET in received
        assert QUERY_SECRET in received

    for flow, code in EXPECTED_CODES.items():
        assert results[flow]["status"] == "failed", flow
        assert code in str(results[flow]), (flow, results[flow])
    outputs = []
    for topic in (
        settings.result_topic,
        settings.dead_letter_topic,
        settings.changelog_topic,
        settings.reply_topic,
    ):
        for record in await read_topic(settings.bootstrap_servers, topic, expect=0, settle_s=1):
            outputs.append(repr((record.key, record.value, record.headers)))
    everything = "\n".join([*outputs, caplog.text, *(str(r.__dict__) for r in caplog.records)])
    assert len(outputs) >= len(EXPECTED_CODES)  # at least the results were read
    for secret in SECRETS:
        assert secret not in everything, secret
    for internal in ("127.0.0.1", "10.0.0.7", "/charge/"):
        assert all(internal not in output for output in outputs), internal


async def test_a_request_id_of_any_text_reaches_the_service_as_an_ascii_key(
    settings: CoordinatorSettings,
) -> None:
    request_id = "zamówienie-ü-日本"
    with JsonHttpServer(lambda call: (HTTPStatus.OK, {"ok": call.segments[-1]})) as server:
        catalog = catalog_from_data(
            {
                "services": {
                    "shop": {
                        "kind": "http",
                        "allow": {"loopback": True},
                        "base_url": server.url,
                        "operations": {"get": {"path": "/orders/{id}"}},
                    }
                }
            },
            source="test catalog",
        )
        builder = FlowBuilder("any-text")
        builder.step("order", service="shop", operation="get", input={"id": "input.id"})
        builder.result({"order": "order"})
        flow = compile_flow(builder.build(), catalog=catalog)
        registry = FlowRegistry(flows={flow.name: flow}, catalog=catalog)
        async with (
            SagaCoordinator(registry=registry, settings=settings),
            OrchestratorClient(settings) as client,
        ):
            await client.submit("any-text", {"id": "ü-1"}, request_id=request_id)
            result = await client.wait_for(request_id, timeout=60)

    assert result["status"] == "completed", result
    assert result["data"] == {"order": {"ok": quote("ü-1")}}  # the path segment, as sent
    keys = [call.headers["idempotency-key"] for call in server.calls]
    assert keys == [f"{quote(request_id, safe='')}:order"]
