"""The call cache over the real broker: many sagas read the same users and stores
through a real HTTP server on loopback that counts its requests. With ``cache`` the
server sees one request per distinct read and every saga still gets its own right
result; without it, every call reaches the server."""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import pytest

from handlers.demo.http_server import HttpCall, JsonHttpServer, RouteResult
from orchestrator.builder import FlowBuilder
from orchestrator.catalog import catalog_from_data
from orchestrator.client import OrchestratorClient
from orchestrator.flow import compile_flow
from orchestrator.flow_files import FlowRegistry
from orchestrator.runtime.call_cache import CallCache
from orchestrator.runtime.coordinator import SagaCoordinator
from orchestrator.settings import CoordinatorSettings

pytestmark = pytest.mark.kafka

FLOW = "profile"
SAGAS = 60
USERS = 3
STORES = 4
RESULT_TIMEOUT_S = 60.0


class Directory:
    """``GET /users/{id}`` and ``GET /stores/{id}`` on loopback, counting requests by path.

    While ``open`` is cleared, requests wait (at most 30 s) before they are answered.
    """

    def __init__(self) -> None:
        self.requests: collections.Counter[str] = collections.Counter()
        self.keys: list[str] = []
        """The Idempotency-Key header of each request."""
        self.open = threading.Event()
        self.open.set()
        self._lock = threading.Lock()
        self._server = JsonHttpServer(self._route, name="directory")

    def _route(self, call: HttpCall) -> RouteResult:
        with self._lock:
            self.requests[f"{call.method} {call.path}"] += 1
            self.keys.append(call.headers.get("idempotency-key", ""))
        if not self.open.wait(timeout=30):
            return HTTPStatus.SERVICE_UNAVAILABLE, {"error": "held too long"}
        kind, ident = call.segments
        return HTTPStatus.OK, {"id": ident, "name": f"{kind} {ident}"}

    @property
    def url(self) -> str:
        return self._server.url

    def seen(self) -> dict[str, int]:
        """Requests so far, by ``"<method> <path>"``."""
        with self._lock:
            return dict(self.requests)

    def __enter__(self) -> Directory:
        self._server.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.open.set()  # no request outlives the test
        self._server.stop()


def profile_registry(base_url: str, *, cached: bool) -> FlowRegistry:
    """A flow reading a user and a store (concurrently: neither reads the other)."""
    cache = {"cache": {"ttl_ms": 600_000}} if cached else {}
    catalog = catalog_from_data(
        {
            "services": {
                "directory": {
                    "kind": "http",
                    "allow": {"loopback": True},
                    "base_url": base_url,
                    "operations": {
                        "get_user": {"method": "GET", "path": "/users/{user_id}", **cache},
                        "get_store": {"method": "GET", "path": "/stores/{store_id}", **cache},
                    },
                }
            }
        },
        source="call cache test catalog",
    )
    flow = FlowBuilder(FLOW, timeout_ms=30_000)
    flow.step("user", service="directory", operation="get_user", input={"user_id": "input.user_id"})
    flow.step(
        "store", service="directory", operation="get_store", input={"store_id": "input.store_id"}
    )
    flow.result({"n": "input.n", "user": "user.name", "store": "store.name"})
    compiled = compile_flow(flow.build(), catalog=catalog)
    return FlowRegistry(flows={compiled.name: compiled}, catalog=catalog)


def input_of(n: int) -> dict[str, Any]:
    return {"n": n, "user_id": f"u-{n % USERS}", "store_id": f"s-{n % STORES}"}


def expected_data(n: int) -> dict[str, Any]:
    return {"n": n, "user": f"users u-{n % USERS}", "store": f"stores s-{n % STORES}"}


async def run_all(
    client: OrchestratorClient, inputs: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    results = await asyncio.gather(
        *(
            client.run(FLOW, flow_input, request_id=request_id, timeout_s=RESULT_TIMEOUT_S)
            for request_id, flow_input in inputs.items()
        )
    )
    return dict(zip(inputs, results, strict=True))


async def eventually(condition: Callable[[], bool], *, timeout_s: float = 60.0) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not true within {timeout_s:g} s")


def cache_of(coordinator: SagaCoordinator) -> CallCache:
    return coordinator._dispatcher.call_cache


async def test_sagas_reading_the_same_data_reach_the_server_once_per_distinct_read(
    settings: CoordinatorSettings,
) -> None:
    first = {f"cached-{n}": input_of(n) for n in range(SAGAS)}
    second = {f"again-{n}": input_of(n) for n in range(SAGAS, 2 * SAGAS)}
    with Directory() as directory:
        registry = profile_registry(directory.url, cached=True)
        async with (
            SagaCoordinator(registry=registry, settings=settings) as coordinator,
            OrchestratorClient(settings) as client,
        ):
            cache = cache_of(coordinator)
            results = await run_all(client, first)
            seen_after_first = directory.seen()
            first_wave = (cache.misses, cache.hits + cache.coalesced)
            hits_before = cache.hits
            # Within the TTL, a second wave is answered from the kept answers alone.
            results |= await run_all(client, second)

    one_each = {f"GET /users/u-{u}": 1 for u in range(USERS)} | {
        f"GET /stores/s-{s}": 1 for s in range(STORES)
    }
    assert seen_after_first == one_each, "one request per distinct read, for 120 calls"
    assert directory.seen() == one_each, "the second wave never reached the server"
    assert first_wave == (USERS + STORES, 2 * SAGAS - USERS - STORES)
    assert cache.hits - hits_before == 2 * SAGAS
    assert cache.misses == USERS + STORES
    for request_id, result in results.items():
        n = int(request_id.rsplit("-", 1)[1])
        assert (result["status"], result["data"]) == ("completed", expected_data(n)), request_id


async def test_identical_reads_in_flight_are_made_once_for_every_saga(
    settings: CoordinatorSettings,
) -> None:
    inputs = {f"held-{n}": {"n": n, "user_id": "u-7", "store_id": "s-7"} for n in range(SAGAS)}
    with Directory() as directory:
        directory.open.clear()  # the first user and store reads wait until every saga asks
        registry = profile_registry(directory.url, cached=True)
        async with (
            SagaCoordinator(registry=registry, settings=settings) as coordinator,
            OrchestratorClient(settings) as client,
        ):
            cache = cache_of(coordinator)
            running = asyncio.ensure_future(run_all(client, inputs))
            # 120 calls waiting on two connections: more than ORCH_HTTP_MAX_CONNECTIONS
            # (100) sagas' calls, and intake goes on, since joined calls hold none.
            await eventually(lambda: cache.coalesced == 2 * (SAGAS - 1))
            directory.open.set()
            results = await running

    assert directory.seen() == {"GET /users/u-7": 1, "GET /stores/s-7": 1}
    assert (cache.misses, cache.coalesced, cache.hits) == (2, 2 * (SAGAS - 1), 0)
    # The shared call carried the first caller's idempotency key.
    assert sorted(key.rsplit(":", 1)[1] for key in directory.keys) == ["store", "user"]
    assert {key.rsplit(":", 1)[0] for key in directory.keys} <= set(inputs)
    for request_id, result in results.items():
        n = int(request_id.rsplit("-", 1)[1])
        assert (result["status"], result["data"]) == (
            "completed",
            {"n": n, "user": "users u-7", "store": "stores s-7"},
        ), request_id


async def test_without_cache_every_call_reaches_the_server(settings: CoordinatorSettings) -> None:
    inputs = {f"uncached-{n}": input_of(n) for n in range(SAGAS)}
    with Directory() as directory:
        registry = profile_registry(directory.url, cached=False)
        async with (
            SagaCoordinator(registry=registry, settings=settings) as coordinator,
            OrchestratorClient(settings) as client,
        ):
            results = await run_all(client, inputs)
            cache = cache_of(coordinator)

    seen = directory.seen()
    assert sum(seen.values()) == 2 * SAGAS
    assert seen == {
        f"GET /users/u-{u}": sum(1 for n in range(SAGAS) if n % USERS == u) for u in range(USERS)
    } | {
        f"GET /stores/s-{s}": sum(1 for n in range(SAGAS) if n % STORES == s) for s in range(STORES)
    }
    assert (cache.misses, cache.hits, cache.coalesced) == (0, 0, 0)
    for request_id, result in results.items():
        n = int(request_id.rsplit("-", 1)[1])
        assert (result["status"], result["data"]) == ("completed", expected_data(n)), request_id
