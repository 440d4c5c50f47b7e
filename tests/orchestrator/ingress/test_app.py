"""The app without Kafka: readiness, CORS, extra routes and hooks (a fake client)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from contracts.flow import FlowDefinition
from orchestrator.catalog import catalog_from_data
from orchestrator.flow import compile_flow
from orchestrator.flow_files import FlowRegistry
from orchestrator.ingress import IngressConfig, TokenTable, create_app


class FakeClient:
    """Answers nothing; Kafka is up or down as the test says."""

    def __init__(
        self,
        *,
        up: bool,
        results: dict[str, dict[str, Any]] | None = None,
        requests: dict[str, dict[str, Any]] | None = None,
        slow_lookups: bool = False,
    ) -> None:
        self.up = up
        self.submitted: list[str] = []
        self.results = results or {}
        self.requests = requests or {}
        self.slow_lookups = slow_lookups

    async def submit(
        self, flow: str, input: dict[str, Any], *, request_id: str | None = None
    ) -> str:
        self.submitted.append(flow)
        return request_id or "r-1"

    async def wait_for(
        self,
        request_id: str,
        *,
        timeout: float = 30.0,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        from orchestrator.client import ResultTimeoutError

        await asyncio.sleep(timeout)
        raise ResultTimeoutError("no result")

    def result_of(self, request_id: str) -> dict[str, Any] | None:
        return self.results.get(request_id)

    async def lookup(self, request_id: str, *, window_ms: int) -> dict[str, Any] | None:
        if self.slow_lookups:
            await asyncio.sleep(60)
        return self.results.get(request_id)

    async def find_request(self, request_id: str, *, window_ms: int) -> dict[str, Any] | None:
        return self.requests.get(request_id)

    async def connected(self, *, timeout: float = 2.0) -> bool:  # noqa: ASYNC109
        return self.up


def registry() -> FlowRegistry:
    catalog = catalog_from_data(
        {
            "services": {
                "s": {"kind": "http", "base_url": "http://x", "operations": {"o": {"path": "/o"}}}
            }
        },
        source="test",
    )
    definition = FlowDefinition.model_validate(
        {
            "name": "f",
            "steps": {"a": {"service": "s", "operation": "o", "input": {}}},
            "result": "a",
        }
    )
    return FlowRegistry(flows={"f": compile_flow(definition, catalog=catalog)}, catalog=catalog)


def http(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingress")


@pytest.mark.parametrize(("up", "status"), [(True, 200), (False, 503)])
async def test_readyz_follows_the_kafka_connection(up: bool, status: int) -> None:
    app = create_app(registry=registry(), client=FakeClient(up=up), config=IngressConfig())

    async with http(app) as client:
        ready = await client.get("/readyz")
        healthy = await client.get("/healthz")

    assert ready.status_code == status
    assert healthy.status_code == 200


async def test_cors_is_off_unless_origins_are_set() -> None:
    closed = create_app(registry=registry(), client=FakeClient(up=True), config=IngressConfig())
    opened = create_app(
        registry=registry(),
        client=FakeClient(up=True),
        config=IngressConfig(cors_origins=("https://shop.example",)),
    )
    preflight = {
        "Origin": "https://shop.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Idempotency-Key",
    }

    async with http(closed) as client:
        refused = await client.options("/flows/f", headers=preflight)
    async with http(opened) as client:
        allowed = await client.options("/flows/f", headers=preflight)

    assert "access-control-allow-origin" not in refused.headers
    assert allowed.headers["access-control-allow-origin"] == "https://shop.example"


async def test_no_result_within_the_wait_is_202_with_a_location() -> None:
    fake = FakeClient(up=True)
    app = create_app(registry=registry(), client=fake, config=IngressConfig(wait_ms=0))

    async with http(app) as client:
        response = await client.post("/flows/f", json={}, headers={"Idempotency-Key": "k-1"})
        pending = await client.get("/requests/k-1")

    assert response.status_code == 202
    assert response.headers["location"] == "/requests/k-1"
    assert pending.status_code == 202
    assert fake.submitted == ["f"]


async def test_extra_routes_and_hooks_join_the_app() -> None:
    calls: list[str] = []

    async def page(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"{len(request.app.state.registry.flows)} flow(s)")

    async def startup(app: Starlette) -> None:
        calls.append("start")

    async def shutdown(app: Starlette) -> None:
        calls.append("stop")

    app = create_app(
        registry=registry(),
        client=FakeClient(up=True),
        config=IngressConfig(),
        routes=[Route("/timeline", page)],
        on_startup=[startup],
        on_shutdown=[shutdown],
    )
    async with app.router.lifespan_context(app), http(app) as client:
        response = await client.get("/timeline")
        assert calls == ["start"]

    assert response.text == "1 flow(s)"
    assert calls == ["start", "stop"]


async def test_a_client_without_settings_takes_the_environment_and_overrides(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from orchestrator.client import OrchestratorClient

    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "env-broker:9092")
    monkeypatch.setenv("ORCH_REQUEST_TOPIC", "env.requests")

    client = OrchestratorClient(result_topic="mine.results")
    await client.stop()  # never started: closes the Kafka clients it made

    assert client.settings.bootstrap_servers == "env-broker:9092"
    assert client.settings.request_topic == "env.requests"
    assert client.settings.result_topic == "mine.results"
    assert client.send == client.submit


async def test_callers_beyond_the_waiter_cap_are_refused() -> None:
    app = create_app(
        registry=registry(), client=FakeClient(up=True), config=IngressConfig(max_waiters=1)
    )

    async with http(app) as client:
        first = asyncio.create_task(client.post("/flows/f", json={}, headers={"Prefer": "wait=1"}))
        await asyncio.sleep(0.2)
        second = await client.post("/flows/f", json={}, headers={"Prefer": "wait=1"})
        pending = await first

    assert pending.status_code == 202
    assert second.status_code == 503
    assert second.json()["errors"][0]["code"] == "ingress.too_many_waiters"


async def test_a_lookup_that_times_out_answers_not_found_yet() -> None:
    fake = FakeClient(
        up=True, slow_lookups=True, requests={"known": {"request_id": "known", "flow": "f"}}
    )
    app = create_app(registry=registry(), client=fake, config=IngressConfig(lookup_timeout_ms=50))

    async with http(app) as client:
        known = await asyncio.wait_for(client.get("/requests/known"), 10)
        unknown = await asyncio.wait_for(client.get("/requests/unknown"), 10)

    assert known.status_code == 202
    assert known.json()["flow"] == "f"
    assert unknown.status_code == 404
    assert "timed out" in unknown.json()["errors"][0]["message"]


async def test_results_of_flows_not_loaded_need_a_star_token() -> None:
    other = {"request_id": "r-9", "flow": "elsewhere", "status": "completed", "data": 1}
    tokens = TokenTable(tokens={"f": (b"f-token",), "*": (b"admin",)}, flows=frozenset({"f"}))
    only_f = TokenTable(tokens={"f": (b"f-token",)}, flows=frozenset({"f"}))
    fake = FakeClient(up=True, results={"r-9": other})

    async with http(
        create_app(registry=registry(), client=fake, config=IngressConfig(tokens=only_f))
    ) as client:
        anonymous = await client.get("/requests/r-9")
        with_f = await client.get("/requests/r-9", headers={"X-API-Key": "f-token"})
    async with http(
        create_app(registry=registry(), client=fake, config=IngressConfig(tokens=tokens))
    ) as client:
        admin = await client.get("/requests/r-9", headers={"X-API-Key": "admin"})

    assert (anonymous.status_code, with_f.status_code) == (401, 401)
    assert admin.status_code == 200
