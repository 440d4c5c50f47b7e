"""Slow drips stay with their service, over the real broker and real loopback sockets:
while 100 sagas wait on a downstream that trickles its body a byte at a time, sagas
calling another service complete with about the latency they had before."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import pytest

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

DRIPS = 100
FAST = 40
AT_ONCE = 4
"""Fast sagas run this many at a time."""
DRIP_POOL = 50
"""The drip service's own pool: half its calls run, the rest wait their turn."""
DRIP_TIMEOUT_MS = 2_000
DRIP_INTERVAL_S = 0.2
DRIP_LENGTH = 64
"""Bytes the drip body declares: 12.8 s at its pace, far past the step's timeout."""


class DripServer:
    """A real HTTP server on loopback (asyncio, on a thread of its own) answering every
    request ``200`` with a body that trickles one byte every :data:`DRIP_INTERVAL_S`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.opened = 0
        self.closed = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._stop: asyncio.Event | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def in_flight(self) -> int:
        with self.lock:
            return self.opened - self.closed

    async def _start(self) -> None:
        self._stop = asyncio.Event()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=256)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._stop is not None
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        with self.lock:
            self.opened += 1
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % DRIP_LENGTH
            )
            for _ in range(DRIP_LENGTH):
                writer.write(b" ")
                await writer.drain()
                if self._stop.is_set():
                    break
                await asyncio.sleep(DRIP_INTERVAL_S)
        except (OSError, asyncio.IncompleteReadError):
            pass  # the client hung up: its call timed out
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            with self.lock:
                self.closed += 1
            self._handlers.discard(task)

    async def _close(self) -> None:
        assert self._server is not None
        assert self._stop is not None
        self._stop.set()
        self._server.close()
        await asyncio.gather(*self._handlers)
        await self._server.wait_closed()

    def __enter__(self) -> DripServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=5)
        return self

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()


@contextmanager
def fast_server() -> Iterator[JsonHttpServer]:
    def route(call: HttpCall) -> RouteResult:
        # No keep-alive: every call needs a connection of its own from the pool,
        # so a pool the drips hold would show (idle connections would hide it).
        return 200, {"id": call.path.rsplit("/", 1)[-1]}, {"Connection": "close"}

    with JsonHttpServer(route, name="fast") as server:
        yield server


def registry(drip_url: str, fast_url: str, *, own_pool: bool) -> FlowRegistry:
    def service(name: str, url: str) -> dict[str, Any]:
        return {
            "kind": "http",
            "allow": {"loopback": True},
            "base_url": url,
            "operations": {"get": {"path": f"/{name}/{{id}}"}},
        }

    # Either the slow service has a pool of its own (what the catalog offers so that
    # one slow service cannot take every connection), or both share the default pool,
    # of which one service may hold three quarters.
    drip = service("drip", drip_url)
    if own_pool:
        drip["max_connections"] = DRIP_POOL
    catalog = catalog_from_data(
        {"services": {"drip": drip, "fast": service("fast", fast_url)}}, source="test catalog"
    )
    flows = []
    for name, timeout_ms in (("drip", DRIP_TIMEOUT_MS), ("fast", 10_000)):
        builder = FlowBuilder(name, timeout_ms=30_000)
        builder.step(
            "call", service=name, operation="get", input={"id": "input.id"}, timeout_ms=timeout_ms
        )
        flows.append(compile_flow(builder.result("call").build(), catalog=catalog))
    return FlowRegistry(flows={flow.name: flow for flow in flows}, catalog=catalog)


async def fast_round(client: OrchestratorClient, phase: str) -> list[tuple[float, Any]]:
    """Run :data:`FAST` fast sagas, :data:`AT_ONCE` at a time: each one's latency and result."""

    async def one(n: int) -> tuple[float, Any]:
        started = time.monotonic()
        result = await client.run("fast", {"id": f"{phase}-{n}"}, timeout_s=30)
        return time.monotonic() - started, result

    timed: list[tuple[float, Any]] = []
    for first in range(0, FAST, AT_ONCE):
        timed += await asyncio.gather(*(one(n) for n in range(first, first + AT_ONCE)))
    return timed


async def connections(drip: DripServer, *, at_least: int, within_s: float) -> int:
    """The drip server's open connections once ``at_least`` are open (or time is up)."""
    for _ in range(int(within_s / 0.02)):
        if drip.in_flight() >= at_least:
            break
        await asyncio.sleep(0.02)
    return drip.in_flight()


def quantile(latencies: list[float], q: float) -> float:
    ordered = sorted(latencies)
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]


@pytest.mark.parametrize("own_pool", [True, False], ids=["own-pool", "shared-pool"])
async def test_slow_drips_do_not_slow_the_sagas_of_other_services(
    settings: CoordinatorSettings, own_pool: bool
) -> None:
    held = DRIP_POOL if own_pool else settings.http_max_connections * 3 // 4
    with DripServer() as drip, fast_server() as fast:
        async with (
            SagaCoordinator(
                registry=registry(drip.url, fast.url, own_pool=own_pool), settings=settings
            ),
            OrchestratorClient(settings) as client,
        ):
            await fast_round(client, "warm-up")
            before = await fast_round(client, "before")

            drips = [
                asyncio.ensure_future(client.run("drip", {"id": f"d{n}"}, timeout_s=30))
                for n in range(DRIPS)
            ]
            dripping = await connections(drip, at_least=held, within_s=5)
            during = await fast_round(client, "during")
            still_dripping = drip.in_flight()
            drip_results = await asyncio.gather(*drips)
        records = await read_topic(
            settings.bootstrap_servers,
            settings.result_topic,
            expect=3 * FAST + DRIPS,
            timeout_s=30,
            settle_s=0.5,
        )

    p50_1, p99_1 = quantile([t for t, _ in before], 0.5), quantile([t for t, _ in before], 0.99)
    p50_2, p99_2 = quantile([t for t, _ in during], 0.5), quantile([t for t, _ in during], 0.99)
    figures = (
        f"before: p50 {p50_1 * 1000:.0f} ms, p99 {p99_1 * 1000:.0f} ms; with {dripping} drips "
        f"({still_dripping} after): p50 {p50_2 * 1000:.0f} ms, p99 {p99_2 * 1000:.0f} ms"
    )
    print(figures)

    assert dripping == held, figures
    assert still_dripping > 0, f"the drips ended before the fast sagas did: {figures}"
    assert [result["status"] for _, result in before + during] == ["completed"] * (2 * FAST)
    # Generous: the point is "about the same", not "blocked behind the drips".
    assert p99_2 <= max(4 * p99_1, p99_1 + 0.5), figures

    published = collections.Counter(orjson.loads(record.value)["request_id"] for record in records)
    assert set(published.values()) == {1}, "a request got more than one result"
    drip_ids = {result["request_id"] for result in drip_results}
    assert len(drip_ids) == DRIPS
    assert drip_ids <= set(published)
    assert [result["status"] for result in drip_results] == ["failed"] * DRIPS
    assert {
        (result["errors"][0]["step"], result["errors"][0]["code"]) for result in drip_results
    } == {("call", "step.timeout")}
