"""The HTTP ingress over the real broker: a real coordinator runs the sagas, the
ingress is served by uvicorn on a loopback port, and httpx calls it.

One coordinator, client and server serve the whole module (start-ups are slow).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

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
    gate: threading.Event
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
        "gate-flow": {"steps": {"g": http_step("gate", timeout_ms=30_000)}, "result": "g"},
        # An optional step times out (and defaults) before a required one fails.
        "mixed-flow": {
            "steps": {
                "o": http_step("slow", timeout_ms=300, optional=True, **one),
                "r": http_step("declined", after=["o"], **one),
            },
            "result": "r",
        },
    }
    operations = ["a", "broken", "slow", "hold", "gate", "declined"]
    catalog = catalog_from_data(
        {"services": {SHOP: http_service(base_url, operations)}},
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
    gate = threading.Event()

    def slow(hit: Hit) -> RouteResult:
        server.release.wait(2.0)
        return 200, {"id": "late"}

    def held(hit: Hit) -> RouteResult:
        hold.wait(30.0)
        return 200, {"id": f"held-{hit.path.rsplit('/', 1)[-1]}"}

    def gated(hit: Hit) -> RouteResult:
        gate.wait(30.0)
        return 200, {"id": "gated"}

    tokens_file = tmp_path_factory.mktemp("ingress") / "tokens.yaml"
    tokens_file.write_text(f"secret-flow: [{TOKEN}]\n")
    settings = CoordinatorSettings(
        bootstrap_servers=kafka_bootstrap, partitions=2, commit_interval_ms=50
    ).with_topics(f"test.{uuid.uuid4().hex[:10]}")
    with RecordingServer(
        {
            "broken": answer_status(503, "down"),
            "declined": answer_status(409, "declined"),
            "slow": slow,
            "hold": held,
            "gate": gated,
        }
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
                        http=http,
                        server=server,
                        hold=hold,
                        gate=gate,
                        settings=settings,
                        registry=registry,
                    )
            finally:
                hold.set()
                gate.set()
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


@asynccontextmanager
async def replica(
    ingress: Ingress,
    config: IngressConfig | None = None,
    *,
    client: OrchestratorClient | None = None,
) -> AsyncIterator[httpx.AsyncClient]:
    """A second ingress over the same topics (another replica, or a restart)."""
    async with client or OrchestratorClient(ingress.settings) as fresh:
        app = create_app(registry=ingress.registry, client=fresh, config=config or IngressConfig())
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://replica", timeout=WAIT
        ) as http:
            yield http


async def test_a_key_reused_for_another_flow_is_409_and_shows_nothing(ingress: Ingress) -> None:
    open_key, secret_key = (f"reuse-{uuid.uuid4().hex[:8]}" for _ in range(2))
    auth = {"Authorization": f"Bearer {TOKEN}"}

    first = await ingress.http.post(
        "/flows/ok-flow", json={"id": "o"}, headers={"Idempotency-Key": open_key}
    )
    secret = await ingress.http.post(
        "/flows/secret-flow", json={"id": "s"}, headers={"Idempotency-Key": secret_key, **auth}
    )
    # The secret flow's result must not come back through an open flow's URL...
    leaked = await ingress.http.post(
        "/flows/ok-flow", json={"id": "o"}, headers={"Idempotency-Key": secret_key}
    )
    # ... and an open flow's result is not the secret flow's answer either.
    crossed = await ingress.http.post(
        "/flows/secret-flow", json={"id": "s"}, headers={"Idempotency-Key": open_key, **auth}
    )
    # A replica that never saw either reads the result back and refuses the same way.
    async with replica(ingress) as other:
        read_back = await other.post(
            "/flows/ok-flow", json={"id": "o"}, headers={"Idempotency-Key": secret_key}
        )

    assert (first.status_code, secret.status_code) == (200, 200)
    for refused in (leaked, crossed, read_back):
        assert refused.status_code == 409
        assert refused.json()["errors"][0]["code"] == "ingress.idempotency_key_reused"
        assert refused.json()["data"] is None
        assert "a-s" not in refused.text


async def test_get_reads_back_a_result_the_client_dropped_from_memory(ingress: Ingress) -> None:
    forgetful = OrchestratorClient(ingress.settings, max_kept_results=1)
    async with replica(ingress, client=forgetful) as other:
        first = await other.post("/flows/ok-flow", json={"id": "f-1"})
        second = await other.post("/flows/ok-flow", json={"id": "f-2"})
        assert forgetful.result_of(first.json()["request_id"]) is None
        again = await other.get(f"/requests/{first.json()['request_id']}")

    assert (first.status_code, second.status_code) == (200, 200)
    assert again.status_code == 200
    assert again.json() == first.json()


async def test_a_replica_answers_202_for_a_request_another_one_published(
    ingress: Ingress,
) -> None:
    posted = await ingress.http.post(
        "/flows/gate-flow", json={"id": "g-1"}, headers={"Prefer": "wait=0"}
    )
    location = posted.headers["location"]

    async with replica(ingress) as other:
        pending = await other.get(location)
        ingress.gate.set()
        waited = await other.get(location, headers={"Prefer": "wait=30"})
        unknown = await other.get(f"/requests/never-sent-{uuid.uuid4().hex[:8]}")

    assert posted.status_code == 202
    assert pending.status_code == 202
    assert pending.json()["flow"] == "gate-flow"
    assert waited.status_code == 200
    assert waited.json()["data"] == {"id": "gated"}
    assert unknown.status_code == 404


class CountingClient(OrchestratorClient):
    """Counts read-backs of Kafka."""

    lookups = 0

    async def lookup(self, request_id: str, *, window_ms: int) -> dict[str, Any] | None:
        self.lookups += 1
        return await super().lookup(request_id, window_ms=window_ms)


async def test_a_fresh_key_is_not_read_back_and_a_slow_lookup_gives_up(ingress: Ingress) -> None:
    counting = CountingClient(ingress.settings)
    async with replica(ingress, client=counting) as other:
        fresh = await other.post(
            "/flows/ok-flow",
            json={"id": "k"},
            headers={"Idempotency-Key": f"fresh-{uuid.uuid4().hex[:8]}"},
        )
    async with replica(ingress, IngressConfig(lookup_timeout_ms=1)) as hasty:
        gave_up = await hasty.get(f"/requests/never-sent-{uuid.uuid4().hex[:8]}")

    assert fresh.status_code == 200
    assert counting.lookups == 0
    assert gave_up.status_code == 404
    assert "timed out" in gave_up.json()["errors"][0]["message"]


async def test_the_status_comes_from_the_error_that_failed_the_saga(ingress: Ingress) -> None:
    response = await ingress.http.post("/flows/mixed-flow", json={"id": "m-1"})

    codes = [error["code"] for error in response.json()["errors"]]
    assert codes[:2] == ["step.timeout", "step.business_error"]
    assert response.status_code == 502


async def test_a_request_over_kafkas_limit_is_413_not_503(ingress: Ingress) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=ingress.settings.bootstrap_servers)
    await admin.start()

    async def limit(size: str) -> None:
        topic = ConfigResource(
            ConfigResourceType.TOPIC,
            ingress.settings.request_topic,
            configs={"max.message.bytes": size},
        )
        await admin.alter_configs([topic])

    try:
        await limit("1500")
        await asyncio.sleep(1.0)  # the broker applies a topic's config asynchronously
        response = await ingress.http.post("/flows/ok-flow", json={"id": "x" * 3000})
    finally:
        await limit("1048588")
        await admin.close()

    assert response.status_code == 413
    error = response.json()["errors"][0]
    assert error["code"] == "ingress.body_too_large"
    assert "Kafka" in error["message"]
    assert "ORCH_INGRESS_MAX_BODY_BYTES" in error["message"]


async def test_a_stopped_client_fails_its_waiters_at_once(ingress: Ingress) -> None:
    client = OrchestratorClient(ingress.settings)
    await client.start()
    waiting = asyncio.create_task(client.wait_for("never-answered", timeout=60))
    await asyncio.sleep(0.1)

    await client.stop()

    with pytest.raises(ConnectionError, match="client stopped"):
        await asyncio.wait_for(waiting, 5)
