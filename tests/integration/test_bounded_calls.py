"""Bounded calls over the real broker and real loopback sockets: a downstream that
drips an endless chunked body forever, or floods one, costs its saga a timeout or
``http.response_too_large``, and its connection is closed soon after; the process
does not keep the body."""

from __future__ import annotations

import asyncio
import socketserver
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from orchestrator.builder import FlowBuilder
from orchestrator.catalog import catalog_from_data
from orchestrator.client import OrchestratorClient
from orchestrator.flow import compile_flow
from orchestrator.flow_files import FlowRegistry
from orchestrator.runtime.coordinator import SagaCoordinator
from orchestrator.settings import CoordinatorSettings

pytestmark = pytest.mark.kafka


class _EndlessServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, *, chunk: bytes, interval_s: float) -> None:
        super().__init__(("127.0.0.1", 0), _EndlessBody)
        self.chunk = chunk
        self.interval_s = interval_s
        self.lock = threading.Lock()
        self.opened = 0
        self.closed: list[float] = []
        self.sent: list[int] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _EndlessBody(socketserver.BaseRequestHandler):
    """Answers 200 with a chunked body that never ends, until the client hangs up."""

    server: _EndlessServer

    def handle(self) -> None:
        server, sock = self.server, self.request
        request = b""
        while b"\r\n\r\n" not in request:
            data = sock.recv(65_536)
            if not data:
                return
            request += data
        with server.lock:
            server.opened += 1
        sent = 0
        try:
            sock.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            frame = b"%x\r\n%s\r\n" % (len(server.chunk), server.chunk)
            while True:
                sock.sendall(frame)
                sent += len(frame)
                time.sleep(server.interval_s)
        except OSError:
            pass  # the client closed the connection: what the test waits for
        with server.lock:
            server.closed.append(time.monotonic())
            server.sent.append(sent)


@contextmanager
def endless_server(*, chunk: bytes, interval_s: float) -> Iterator[_EndlessServer]:
    server = _EndlessServer(chunk=chunk, interval_s=interval_s)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def registry(base_url: str, *, timeout_ms: int, max_response_bytes: int) -> FlowRegistry:
    catalog = catalog_from_data(
        {
            "services": {
                "endless": {
                    "kind": "http",
                    "allow": {"loopback": True},
                    "base_url": base_url,
                    "max_response_bytes": max_response_bytes,
                    "operations": {"get": {"path": "/items/{id}"}},
                }
            }
        },
        source="test catalog",
    )
    builder = FlowBuilder("endless", timeout_ms=timeout_ms)
    builder.step("call", service="endless", operation="get", input={"id": "input.id"})
    flow = compile_flow(builder.result({"answer": "call"}).build(), catalog=catalog)
    return FlowRegistry(flows={flow.name: flow}, catalog=catalog)


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


async def all_closed(server: _EndlessServer, *, within_s: float) -> float:
    """Seconds until every connection the server opened was closed by the client."""
    started = time.monotonic()
    while time.monotonic() - started < within_s:
        with server.lock:
            if server.opened and len(server.closed) == server.opened:
                return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"{server.opened - len(server.closed)} connection(s) still open")


async def run_all(settings: CoordinatorSettings, reg: FlowRegistry, count: int) -> list[Any]:
    async with (
        SagaCoordinator(registry=reg, settings=settings),
        OrchestratorClient(settings) as client,
    ):
        return await asyncio.gather(
            *(client.run("endless", {"id": f"i{n}"}, timeout_s=60) for n in range(count))
        )


async def test_a_slow_drip_times_out_and_its_connection_is_closed(
    settings: CoordinatorSettings,
) -> None:
    with endless_server(chunk=b" ", interval_s=0.05) as server:
        results = await run_all(
            settings, registry(server.url, timeout_ms=500, max_response_bytes=1_000_000), 3
        )
        await all_closed(server, within_s=3)

    assert [result["status"] for result in results] == ["failed"] * 3
    assert {result["errors"][0]["code"] for result in results} == {"step.timeout"}


async def test_endless_bodies_are_cut_off_and_the_process_does_not_keep_them(
    settings: CoordinatorSettings,
) -> None:
    before = rss_bytes()
    with endless_server(chunk=b" " * 65_536, interval_s=0) as server:
        results = await run_all(
            settings, registry(server.url, timeout_ms=5_000, max_response_bytes=2_000_000), 3
        )
        await all_closed(server, within_s=3)
        await asyncio.sleep(0.5)
        growth = rss_bytes() - before

    assert [result["status"] for result in results] == ["failed"] * 3
    assert {result["errors"][0]["adapter_code"] for result in results} == {
        "http.response_too_large"
    }
    # Generous: what the kernel buffered and the client read before the cut, not 880 MB.
    assert max(server.sent) < 64_000_000
    assert growth < 150_000_000, f"the process grew by {growth / 1e6:.0f} MB"
