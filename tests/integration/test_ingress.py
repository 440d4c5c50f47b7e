"""The HTTP ingress over the real broker: a real coordinator runs the sagas, the
ingress is served by uvicorn on a loopback port, and httpx calls it.

One coordinator, client and server serve the whole module (start-ups are slow).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from contracts.flow import FlowDefinition
from handlers.demo.http_server import RouteResult
from orchestrator.catalog import catalog_from_data
from orchestrator.client import OrchestratorClient
from orchestrator.commands.serve import bind
from orchestrator.flow import compile_flow
from orchestrator.flow_files import FlowRegistry
from orchestrator.ingress import IngressConfig, create_app, load_tokens
from orchestrator.runtime.coordinator import SagaCoordinator
from orchestrator.settings import CoordinatorSettings
from tests.integration.durability_io import started
from tests.integration.saga_flows import (
    SHOP,
    Hit,
    RecordingServer,
    answer_status,
    http_service,
    http_step,
)

pytestmark = pytest.mark.kafka

TOKEN = "s3cret-frontend"
MAX_BODY = 4096
WAIT = httpx.Timeout(60.0)
ID_SCHEMA = {
    "type": "object",
    "required": ["id"],
    "properties": {"id": {"type": "string", "minLength": 1}},
}


@dataclass
class Ingress:
    """The module's running system."""

    http: httpx.AsyncClient
    server: RecordingServer
    hold: threading.Event
    settings: CoordinatorSettings
    registry: FlowRegistry


def _flows(base_url: str) -> FlowRegistry:
    one = {"retry": {"attempts": 1}}
    definitions = {
        "ok-flow": {"steps": {"a": http_step("a")}, "result": {"id": "a.id"}},
        "partial-flow": {
            "steps": {"a": http_step("a"), "b": http_step("broken", optional=True, **one)},
            "result": {"id": "a.id", "b": "b"},
        },
        "down-flow": {"steps": {"b": http_step("broken", **one)}, "result": "b"},
        "slow-flow": {"steps": {"s": http_step("slow", timeout_ms=300, **one)}, "result": "s"},
        "hold-flow": {"steps": {"h": http_step("hold", timeout_ms=30_000)}, "result": "h"},
        "secret-flow": {"steps": {"a": http_step("a")}, "result": {"id": "a.id"}},
    }
    catalog = catalog_from_data(
        {"services": {SHOP: http_service(base_url, ["a", "broken", "slow", "hold"])}},
        source="ingress test catalog",
    )
    compiled = {
        name: compile_flow(
            FlowDefinition.model_validate({"name": name, "input_schema": ID_SCHEMA, **body}),
            catalog=catalog,
        )
        for name, body in definitions.items()
    }
    return FlowRegistry(flows=compiled, catalog=catalog)


@pytest.fixture(scope="module")
async def ingress(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Ingress]:
    hold = threading.Event()

    def slow(hit: Hit) -> RouteResult:
        server.release.wait(2.0)
        return 200, {"id": "late"}

    def held(hit: Hit) -> RouteResult:
        hold.wait(30.0)
        return 200, {"id": f"held-{hit.path.rsplit('/', 1)[-1]}"}

    tokens_file = tmp_path_factory.mktemp("ingress") / "tokens.yaml"
    tokens_file.write_text(f"secret-flow: [{TOKEN}]\n")
    settings = CoordinatorSettings(
        bootstrap_servers=kafka_bootstrap, partitions=2, commit_interval_ms=50
    ).with_topics(f"test.{uuid.uuid4().hex[:10]}")
    with RecordingServer(
        {"broken": answer_status(503, "down"), "slow": slow, "hold": held}
    ) as server:
        registry = _flows(server.url)
        config = IngressConfig(
            wait_ms=15_000,
            max_body_bytes=MAX_BODY,
            tokens=load_tokens(str(tokens_file), flows=registry.flows),
        )
        async with (
            SagaCoordinator(registry=registry, settings=settings) as coordinator,
            OrchestratorClient(settings, source="urn:test:ingress") as client,
        ):
            await started(coordinator)
            app = create_app(registry=registry, client=client, config=config)
            listener = bind("127.0.0.1", 0)
            port = listener.getsockname()[1]
            uvicorn_server = uvicorn.Server(
                uvicorn.Config(app, log_config=None, access_log=False, lifespan="on")
            )
            serving = asyncio.create_task(uvicorn_server.serve(sockets=[listener]))
            while not uvicorn_server.started:
                assert not serving.done(), "uvicorn did not start"
                await asyncio.sleep(0.02)
            try:
                async with httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{port}", timeout=WAIT
                ) as http:
                    yield Ingress(
                        http=http, server=server, hold=hold, settings=settings, registry=registry
                    )
            finally:
                hold.set()
                uvicorn_server.should_exit = True
                await serving
                listener.close()


def _hits(server: RecordingServer, operation: str, item: str) -> int:
    return sum(1 for hit in server.of(operation) if hit.path.endswith(f"/{item}"))


async def test_a_complete_result_is_200_with_its_data(ingress: Ingress) -> None:
    response = await ingress.http.post("/flows/ok-flow", json={"id": "c-1"})

    assert response.status_code == 200
    body = response.json()
    assert body["data"] == {"id": "a-c-1"}
    assert (body["status"], body["complete"], body["errors"]) == ("completed", True, [])
    assert response.headers["orchestrator-complete"] == "true"
    assert response.headers["orchestrator-request-id"] == body["request_id"]


async def test_a_partial_result_is_200_and_says_so_in_a_header(ingress: Ingress) -> None:
    response = await ingress.http.post("/flows/partial-flow", json={"id": "p-1"})

    assert response.status_code == 200
    assert response.headers["orchestrator-complete"] == "false"
    body = response.json()
    assert body["complete"] is False
    assert body["data"] == {"id": "a-p-1", "b": None}


@pytest.mark.parametrize(
    ("flow", "body", "status", "code"),
    [
        ("ok-flow", {"id": 7}, 422, "input.invalid"),
        ("down-flow", {"id": "d-1"}, 502, "step.technical_error"),
        ("slow-flow", {"id": "s-1"}, 504, "step.timeout"),
    ],
)
async def test_failed_results_are_mapped_from_their_error_code(
    ingress: Ingress, flow: str, body: dict[str, Any], status: int, code: str
) -> None:
    response = await ingress.http.post(f"/flows/{flow}", json=body)

    assert response.status_code == status
    answer = response.json()
    assert answer["errors"][0]["code"] == code
    assert answer["status"] == "failed"
    assert answer["request_id"]


async def test_an_unknown_flow_is_404_with_the_same_envelope(ingress: Ingress) -> None:
    response = await ingress.http.post("/flows/no-such-flow", json={"id": "x"})

    assert response.status_code == 404
    body = response.json()
    assert body["errors"][0]["code"] == "flow.unknown"
    assert "ok-flow" in body["errors"][0]["message"]
    assert set(body) == {"request_id", "flow", "status", "complete", "data", "errors"}


async def test_no_result_within_the_wait_is_202_then_get_answers_it(ingress: Ingress) -> None:
    response = await ingress.http.post(
        "/flows/hold-flow", json={"id": "h-1"}, headers={"Prefer": "wait=0.2"}
    )

    assert response.status_code == 202
    location = response.headers["location"]
    request_id = response.json()["request_id"]
    assert location == f"/requests/{request_id}"
    assert response.json()["status"] == "pending"
    still = await ingress.http.get(location)
    assert still.status_code == 202

    ingress.hold.set()
    answered = await ingress.http.get(location, headers={"Prefer": "wait=30"})

    assert answered.status_code == 200
    assert answered.json()["data"] == {"id": "held-h-1"}


async def test_an_idempotency_key_runs_once_and_gets_the_same_result(ingress: Ingress) -> None:
    key = f"order-{uuid.uuid4().hex[:8]}"
    headers = {"Idempotency-Key": key}

    first = await ingress.http.post("/flows/ok-flow", json={"id": key}, headers=headers)
    second = await ingress.http.post("/flows/ok-flow", json={"id": key}, headers=headers)

    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert first.json()["request_id"] == key
    assert _hits(ingress.server, "a", key) == 1


async def test_a_result_from_before_the_reader_started_is_read_back(ingress: Ingress) -> None:
    request_id = f"old-{uuid.uuid4().hex[:8]}"
    answered = await ingress.http.post(
        "/flows/ok-flow", json={"id": request_id}, headers={"Idempotency-Key": request_id}
    )
    assert answered.status_code == 200

    async with OrchestratorClient(ingress.settings) as fresh:
        assert fresh.result_of(request_id) is None
        found = await fresh.lookup(request_id, window_ms=600_000)
        missing = await fresh.lookup("never-sent", window_ms=600_000)
    # A second ingress (a restart, another replica) answers a retry of the key with
    # the first result: the coordinator drops the copy, the read-back finds it.
    async with OrchestratorClient(ingress.settings) as fresh:
        app = create_app(registry=ingress.registry, client=fresh, config=IngressConfig())
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://replica", timeout=WAIT
        ) as replica:
            retried = await replica.post(
                "/flows/ok-flow", json={"id": request_id}, headers={"Idempotency-Key": request_id}
            )
            fetched = await replica.get(f"/requests/{request_id}")

    assert found is not None
    assert found["data"] == {"id": f"a-{request_id}"}
    assert missing is None
    assert retried.status_code == fetched.status_code == 200
    assert retried.json() == fetched.json() == answered.json()
    assert _hits(ingress.server, "a", request_id) == 1


async def test_get_of_an_unknown_request_is_404(ingress: Ingress) -> None:
    response = await ingress.http.get("/requests/never-sent-here")

    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "ingress.result_not_found"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Authorization": f"Bearer {TOKEN}"}, 200),
        ({"X-API-Key": TOKEN}, 200),
    ],
)
async def test_a_protected_flow_needs_its_token(
    ingress: Ingress, headers: dict[str, str], status: int
) -> None:
    response = await ingress.http.post("/flows/secret-flow", json={"id": "t"}, headers=headers)

    assert response.status_code == status
    if status == 401:
        assert response.json()["errors"][0]["code"] == "ingress.unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"


async def test_a_body_over_the_limit_is_413_whether_declared_or_streamed(
    ingress: Ingress,
) -> None:
    big = orjson.dumps({"id": "x" * MAX_BODY})

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 1000):
            yield big[start : start + 1000]

    declared = await ingress.http.post("/flows/ok-flow", content=big)
    streamed = await ingress.http.post("/flows/ok-flow", content=chunks())

    assert declared.status_code == streamed.status_code == 413
    assert declared.json()["errors"][0]["code"] == "ingress.body_too_large"
    assert str(MAX_BODY) in declared.json()["errors"][0]["message"]


async def test_a_bad_idempotency_key_is_400(ingress: Ingress) -> None:
    response = await ingress.http.post(
        "/flows/ok-flow", json={"id": "k"}, headers={"Idempotency-Key": "has spaces/and slash"}
    )

    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "ingress.invalid_idempotency_key"


async def test_openapi_health_readiness_and_metrics(ingress: Ingress) -> None:
    document = (await ingress.http.get("/openapi.json")).json()
    healthz = await ingress.http.get("/healthz")
    readyz = await ingress.http.get("/readyz")
    metrics = (await ingress.http.get("/metrics")).text

    operation = document["paths"]["/flows/ok-flow"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == ID_SCHEMA
    assert "security" in document["paths"]["/flows/secret-flow"]["post"]
    assert (healthz.status_code, readyz.status_code) == (200, 200)
    assert (
        'orchestrator_ingress_requests_total{flow="ok-flow",route="/flows/{name}",status="200"}'
        in metrics
    )
    assert "orchestrator_ingress_waiting 0.0" in metrics
