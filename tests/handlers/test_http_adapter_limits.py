"""The HTTP adapter's correctness at the edges, against real loopback servers: dot
segments, whole-call timeouts, response size limits, JSON in URLs, redirects,
Retry-After and per-service pools."""

from __future__ import annotations

import asyncio
import email.utils
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from contracts.catalog import HttpService
from handlers.context import CallContext
from handlers.demo.http_server import HttpCall, JsonHttpServer, RouteResult
from handlers.http import HttpAdapter, build_http_client
from handlers.http_outcomes import retry_after_ms
from handlers.outcome import CallOutcome


def adapter(base_url: str, client: httpx.AsyncClient, **service: Any) -> HttpAdapter:
    definition = HttpService.model_validate(
        {
            "kind": "http",
            "allow": {"loopback": True},
            "base_url": base_url,
            "operations": {
                "get": {"path": "/items/{id}"},
                "find": {"path": "/find", "query": {"ids": "{ids}"}},
                "nested": {"path": "/v/{a}{b}/x"},
            },
            **service,
        }
    )
    return HttpAdapter("svc", definition, client=client)


async def call(
    target: HttpAdapter, payload: Any, *, operation: str = "get", timeout_s: float = 5.0
) -> CallOutcome:
    return await target.call(
        operation, payload, context=CallContext.for_test(), timeout_s=timeout_s
    )


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with build_http_client() as shared:
        yield shared


@pytest.fixture
def recorder() -> Iterator[JsonHttpServer]:
    def route(call: HttpCall) -> RouteResult:
        return 200, {"path": call.path, "query": call.query}

    with JsonHttpServer(route) as server:
        yield server


class RawServer:
    """A TCP server that answers every connection with ``script`` (bytes, delays)."""

    def __init__(self, script: list[bytes | float]) -> None:
        self.script = script
        self.raw_requests: list[bytes] = []
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._socket.getsockname()[1]}"

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        with connection:
            self.raw_requests.append(connection.recv(65536))
            try:
                for part in self.script:
                    if self._stop.is_set():
                        return
                    if isinstance(part, float):
                        time.sleep(part)
                    else:
                        connection.sendall(part)
            except OSError:
                return  # the client hung up, as it should past its deadline


@pytest.mark.parametrize("value", [".", "..", "...", "%2E%2E"])
async def test_dot_values_stay_inside_their_path_segment(
    value: str, recorder: JsonHttpServer, client: httpx.AsyncClient
) -> None:
    outcome = await call(adapter(recorder.url, client), {"id": value})

    assert outcome.status == "ok", outcome.error_message
    # The server decodes the segment back to the value: same route, same item.
    assert outcome.output["path"].startswith("/items/")
    assert recorder.calls[-1].segments[0] == "items"
    assert len(recorder.calls[-1].segments) == 2


async def test_dot_segments_made_of_value_and_fixed_text_are_encoded(
    recorder: JsonHttpServer, client: httpx.AsyncClient
) -> None:
    outcome = await call(adapter(recorder.url, client), {"a": ".", "b": "."}, operation="nested")

    assert outcome.status == "ok"
    assert recorder.calls[-1].segments[0] == "v"
    assert recorder.calls[-1].segments[-1] == "x"


async def test_lists_reach_urls_as_json(
    recorder: JsonHttpServer, client: httpx.AsyncClient
) -> None:
    outcome = await call(adapter(recorder.url, client), {"ids": ["a", "b"]}, operation="find")

    assert outcome.status == "ok"
    assert outcome.output["query"] == {"ids": ['["a","b"]']}


async def test_the_timeout_bounds_the_whole_call_not_each_read(
    client: httpx.AsyncClient,
) -> None:
    # Headers at once, then one body byte every 0.2 s: no single read is slow.
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n"
    script: list[bytes | float] = [head]
    for _ in range(40):
        script += [0.2, b" "]
    with RawServer(script) as server:
        started = time.monotonic()
        outcome = await call(adapter(server.url, client), {"id": "1"}, timeout_s=0.5)
        elapsed = time.monotonic() - started

    assert (outcome.status, outcome.error_code) == ("technical_error", "http.timeout")
    assert elapsed < 3.0, f"a 0.5 s call was held for {elapsed:.1f} s"


async def test_a_declared_oversized_body_is_refused_before_reading(
    client: httpx.AsyncClient,
) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n"
    with RawServer([head, b"[" + b"1," * 100]) as server:
        outcome = await call(adapter(server.url, client, max_response_bytes=1000), {"id": "1"})

    assert (outcome.status, outcome.error_code) == ("business_error", "http.response_too_large")
    assert "Content-Length 5000" in outcome.error_message


async def test_an_endless_chunked_body_is_cut_off(client: httpx.AsyncClient) -> None:
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"400\r\n" + b" " * 1024 + b"\r\n"
    with RawServer([head, *([chunk] * 200), 30.0]) as server:
        outcome = await call(
            adapter(server.url, client, max_response_bytes=64 * 1024), {"id": "1"}, timeout_s=20
        )

    assert (outcome.status, outcome.error_code) == ("business_error", "http.response_too_large")
    assert "cut off" in outcome.error_message


async def test_redirects_are_reported_not_followed(client: httpx.AsyncClient) -> None:
    def moved(call: HttpCall) -> RouteResult:
        return 302, {}, {"Location": "http://elsewhere.example/items/1"}

    with JsonHttpServer(moved) as server:
        outcome = await call(adapter(server.url, client), {"id": "1"})

    assert (outcome.status, outcome.error_code) == ("business_error", "http.302")
    assert "elsewhere.example" not in outcome.error_message  # internal addresses stay inside
    assert len(server.calls) == 1


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_seconds_is_reported(status: int, client: httpx.AsyncClient) -> None:
    def busy(call: HttpCall) -> RouteResult:
        return status, {"error": "later"}, {"Retry-After": "3"}

    with JsonHttpServer(busy) as server:
        outcome = await call(adapter(server.url, client), {"id": "1"})

    assert (outcome.status, outcome.error_code) == ("technical_error", f"http.{status}")
    assert outcome.retry_after_ms == 3000


async def test_retry_after_http_date_is_reported(client: httpx.AsyncClient) -> None:
    def busy(call: HttpCall) -> RouteResult:
        when = email.utils.formatdate(time.time() + 60, usegmt=True)
        return 503, {"error": "later"}, {"Retry-After": when}

    with JsonHttpServer(busy) as server:
        outcome = await call(adapter(server.url, client), {"id": "1"})

    assert outcome.retry_after_ms is not None
    assert 55_000 <= outcome.retry_after_ms <= 61_000


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("0", 0),
        ("100000", 600_000),  # capped at ten minutes
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),  # in the past
    ],
)
def test_retry_after_parsing(header: str | None, expected: int | None) -> None:
    assert retry_after_ms(header) == expected


async def test_a_service_with_its_own_pool_does_not_starve_the_others(
    client: httpx.AsyncClient,
) -> None:
    release = threading.Event()

    def slow(call: HttpCall) -> RouteResult:
        release.wait(timeout=20)
        return 200, {"slow": True}

    def fast(call: HttpCall) -> RouteResult:
        return 200, {"fast": True}

    tiny_shared = build_http_client(max_connections=2, max_keepalive=2)
    try:
        with JsonHttpServer(slow) as slow_server, JsonHttpServer(fast) as fast_server:
            slow_adapter = adapter(slow_server.url, tiny_shared, max_connections=2)
            fast_adapter = adapter(fast_server.url, tiny_shared)
            stuck = [
                asyncio.create_task(call(slow_adapter, {"id": str(n)}, timeout_s=20))
                for n in range(4)
            ]
            try:
                # The slow service's own pool (2) is full, and 2 more calls wait;
                # the shared pool is untouched.
                outcome = await call(fast_adapter, {"id": "1"}, timeout_s=10)
            finally:
                release.set()
                await asyncio.gather(*stuck)
            await slow_adapter.aclose()
    finally:
        await tiny_shared.aclose()

    assert outcome.output == {"fast": True}
    assert slow_adapter.owns_client
    assert not fast_adapter.owns_client
