"""The built-in HTTP adapter against real loopback servers."""

from __future__ import annotations

import socket
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from contracts.catalog import HttpService
from handlers.context import CallContext
from handlers.demo.http_server import HttpCall, JsonHttpServer, RouteResult
from handlers.http import HttpAdapter, build_http_client

RELEASE_SLOW = threading.Event()


def route(call: HttpCall) -> RouteResult:
    head = call.segments[0] if call.segments else ""
    if head == "items":
        return 200, {"id": call.segments[1], "query": call.query, "body": call.body}
    if head == "missing":
        return 404, {"error": "item i-9 not found"}
    if head == "gone":
        return 410, {"detail": "withdrawn"}
    if head == "boom":
        return 500, {"error": "database down"}
    if head == "busy":
        return 429, {"message": "slow down"}
    if head == "slow":
        RELEASE_SLOW.wait(timeout=5)
        return 200, {"late": True}
    return 404, {"error": "no route"}


SERVICE = {
    "kind": "http",
    "allow": {"loopback": True},
    "headers": {"Authorization": "Bearer s3cret"},
    "operations": {
        "get_item": {"path": "/items/{id}"},
        "search": {
            "method": "POST",
            "path": "/items/search",
            "query": {"q": "{term}", "page": "{page}"},
            "headers": {"X-Tenant": "{tenant}"},
            "body": {
                "term": "{term}",
                "limit": "{limit}",
                "note": "limit is {limit}",
                "tags": "{tags}",
            },
        },
        "missing": {"path": "/missing"},
        "gone": {"path": "/gone"},
        "boom": {"path": "/boom"},
        "busy": {"path": "/busy"},
        "slow": {"path": "/slow"},
    },
}


@pytest.fixture(scope="module")
def server() -> Iterator[JsonHttpServer]:
    with JsonHttpServer(route, name="items") as running:
        try:
            yield running
        finally:
            RELEASE_SLOW.set()  # let a still-sleeping slow route finish


@pytest.fixture(params=["aiohttp-pool", "httpx-client"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    """Every test runs on both paths: the default client (calls go to aiohttp's pool
    directly) and a custom httpx client (calls go through httpx)."""
    shared = (
        build_http_client()
        if request.param == "aiohttp-pool"
        else httpx.AsyncClient(timeout=None, follow_redirects=False)
    )
    async with shared:
        yield shared


def adapter_for(base_url: str, client: httpx.AsyncClient) -> HttpAdapter:
    service = HttpService.model_validate({**SERVICE, "base_url": base_url})
    return HttpAdapter("items", service, client=client)


async def call(
    server: JsonHttpServer,
    client: httpx.AsyncClient,
    operation: str,
    payload: Any = None,
    *,
    timeout_s: float = 5.0,
) -> Any:
    adapter = adapter_for(server.url + "/", client)
    return await adapter.call(
        operation,
        payload or {},
        context=CallContext.for_test(request_id="r-1", call="step"),
        timeout_s=timeout_s,
    )


async def test_ok_returns_the_json_body(server: JsonHttpServer, client: httpx.AsyncClient) -> None:
    outcome = await call(server, client, "get_item", {"id": "i-1"})

    assert outcome.status == "ok"
    assert outcome.output == {"id": "i-1", "query": {}, "body": None}
    assert outcome.error_code is None


@pytest.mark.parametrize(
    ("operation", "expected"),
    [
        ("missing", ("business_error", "http.404", "item i-9 not found")),
        ("gone", ("business_error", "http.410", "withdrawn")),
        ("boom", ("technical_error", "http.500", "database down")),
        ("busy", ("technical_error", "http.429", "slow down")),
    ],
)
async def test_error_statuses_map_to_outcomes(
    server: JsonHttpServer, client: httpx.AsyncClient, operation: str, expected: tuple[str, ...]
) -> None:
    status, code, reason = expected

    outcome = await call(server, client, operation)

    assert (outcome.status, outcome.error_code) == (status, code)
    # The status and its standard phrase; never the downstream's body.
    assert outcome.error_message.startswith(f"GET answered {code[5:]} ")
    assert reason not in outcome.error_message
    assert outcome.output is None


async def test_slow_route_times_out(server: JsonHttpServer, client: httpx.AsyncClient) -> None:
    outcome = await call(server, client, "slow", timeout_s=0.2)

    assert (outcome.status, outcome.error_code) == ("technical_error", "http.timeout")
    assert "longer than 0.2 s" in outcome.error_message


async def test_unreachable_port(client: httpx.AsyncClient) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    adapter = adapter_for(f"http://127.0.0.1:{port}", client)

    outcome = await adapter.call(
        "get_item", {"id": "x"}, context=CallContext.for_test(call="k"), timeout_s=2
    )

    assert (outcome.status, outcome.error_code) == ("technical_error", "http.unreachable")
    # Which call failed, not where the network put it.
    assert outcome.error_message.startswith("GET could not be reached")
    assert "127.0.0.1" not in outcome.error_message
    assert str(port) not in outcome.error_message


async def test_headers_reach_the_server(server: JsonHttpServer, client: httpx.AsyncClient) -> None:
    payload = {"term": "mug", "page": 2, "tenant": "t-7", "limit": 10, "tags": ["a", "b"]}

    outcome = await call(server, client, "search", payload)

    assert outcome.status == "ok"
    seen = server.calls[-1]
    assert seen.method == "POST"
    assert seen.headers["idempotency-key"] == "r-1:step"
    assert seen.headers["authorization"] == "Bearer s3cret"
    assert seen.headers["x-tenant"] == "t-7"


async def test_query_and_typed_body_are_rendered(
    server: JsonHttpServer, client: httpx.AsyncClient
) -> None:
    payload = {"term": "mug & jug", "page": 2, "tenant": "t", "limit": 10, "tags": ["a", "b"]}

    outcome = await call(server, client, "search", payload)

    assert outcome.output["query"] == {"q": ["mug & jug"], "page": ["2"]}
    assert outcome.output["body"] == {
        "term": "mug & jug",
        "limit": 10,
        "note": "limit is 10",
        "tags": ["a", "b"],
    }


@pytest.mark.parametrize(
    ("item_id", "raw_path"),
    [("a/b", "/items/a%2Fb"), ("a b?c", "/items/a%20b%3Fc"), ("é", "/items/%C3%A9")],
)
async def test_path_placeholders_are_url_encoded(
    server: JsonHttpServer, client: httpx.AsyncClient, item_id: str, raw_path: str
) -> None:
    outcome = await call(server, client, "get_item", {"id": item_id})

    assert outcome.status == "ok"
    assert server.calls[-1].path == raw_path
    assert outcome.error_message == ""


@pytest.mark.parametrize("payload", [{}, {"id": None}, ["not", "an", "object"]])
async def test_missing_input_field_is_a_business_error(
    server: JsonHttpServer, client: httpx.AsyncClient, payload: Any
) -> None:
    before = len(server.calls)
    adapter = adapter_for(server.url, client)

    outcome = await adapter.call(
        "get_item", payload, context=CallContext.for_test(call="k"), timeout_s=5
    )

    assert (outcome.status, outcome.error_code) == ("business_error", "input.invalid")
    assert "items.get_item needs input field 'id'" in outcome.error_message
    assert len(server.calls) == before  # nothing was sent


async def test_unknown_operation(server: JsonHttpServer, client: httpx.AsyncClient) -> None:
    outcome = await call(server, client, "delete_everything")

    assert (outcome.status, outcome.error_code) == ("business_error", "operation.unknown")
    assert "'delete_everything'" in outcome.error_message


class _TextHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"<html>definitely not json</html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


async def test_non_json_success_body_is_a_technical_error(client: httpx.AsyncClient) -> None:
    text_server = ThreadingHTTPServer(("127.0.0.1", 0), _TextHandler)
    thread = threading.Thread(target=text_server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = text_server.server_address[:2]
        adapter = adapter_for(f"http://{host!s}:{port}", client)
        outcome = await adapter.call(
            "get_item", {"id": "x"}, context=CallContext.for_test(call="k"), timeout_s=5
        )
    finally:
        text_server.shutdown()
        text_server.server_close()
        thread.join(timeout=5)

    assert (outcome.status, outcome.error_code) == ("technical_error", "http.invalid_json")
    assert "answered 200" in outcome.error_message
