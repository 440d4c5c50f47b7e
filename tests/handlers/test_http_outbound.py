"""The outbound allow-list, secret-free messages and ASCII idempotency keys, over real sockets."""

from __future__ import annotations

import socket
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from contracts.catalog import HttpService
from handlers.context import CallContext
from handlers.demo.http_server import HttpCall, JsonHttpServer, RouteResult
from handlers.http import HttpAdapter, build_http_client, idempotency_header_value
from handlers.outbound import AddressPolicy


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("169.254.169.254", "link_local"),
        ("fe80::1", "link_local"),
        ("fd00:ec2::254", "link_local"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "private"),
        ("fd12::1", "private"),
        ("0.0.0.0", "special"),
        ("::", "special"),
        ("224.0.0.1", "special"),
        ("255.255.255.255", "special"),
        ("93.184.216.34", None),
        ("2606:4700::1111", None),
    ],
)
def test_the_default_policy_refuses_every_internal_address(address: str, kind: str | None) -> None:
    assert AddressPolicy().refusal(address) == kind


def test_allowances_open_only_their_class() -> None:
    policy = AddressPolicy.of(private=True, networks=["192.0.2.0/24"])
    assert policy.refusal("10.0.0.1") is None
    assert policy.refusal("192.0.2.7") is None
    assert policy.refusal("127.0.0.1") == "loopback"
    # The metadata address sits inside fc00::/7 but stays refused with private allowed.
    assert policy.refusal("fd00:ec2::254") == "link_local"
    assert AddressPolicy(link_local=True).refusal("169.254.169.254") is None


class RecordingListener:
    """A loopback socket that counts the connections made to it (answers none)."""

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(16)
        self._socket.settimeout(0.1)
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._socket.close()


@pytest.fixture
def listener() -> Iterator[RecordingListener]:
    running = RecordingListener()
    try:
        yield running
    finally:
        running.close()


@pytest.fixture(params=["aiohttp-pool", "httpx-client"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    shared = (
        build_http_client()
        if request.param == "aiohttp-pool"
        else httpx.AsyncClient(timeout=None, follow_redirects=False)
    )
    async with shared:
        yield shared


def adapter(
    base_url: str, client: httpx.AsyncClient, *, name: str = "svc", **extra: Any
) -> HttpAdapter:
    service = HttpService.model_validate(
        {
            "kind": "http",
            "base_url": base_url,
            "operations": {"get": {"path": "/items/{id}", "query": {"q": "{q}"}}},
            **extra,
        }
    )
    return HttpAdapter(name, service, client=client)


async def get(
    target: HttpAdapter, *, request_id: str = "r-1", q: str = "x", timeout_s: float = 5
) -> Any:
    context = CallContext.for_test(request_id=request_id, call="get")
    return await target.call("get", {"id": "1", "q": q}, context=context, timeout_s=timeout_s)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]"])
async def test_loopback_is_refused_before_connecting(
    host: str, listener: RecordingListener, client: httpx.AsyncClient
) -> None:
    outcome = await get(adapter(f"http://{host}:{listener.port}", client))

    assert (outcome.status, outcome.error_code) == ("business_error", "http.address_refused")
    assert outcome.error_message.startswith("GET not sent: the address is loopback")
    assert listener.connections == 0


@pytest.mark.parametrize(
    "allow", [{"loopback": True}, {"networks": ["127.0.0.0/8"]}, {"networks": ["::ffff:0:0/96"]}]
)
async def test_an_allowance_lets_the_call_through(
    allow: dict[str, Any], client: httpx.AsyncClient
) -> None:
    with JsonHttpServer(lambda call: (200, {"ok": True})) as server:
        outcome = await get(adapter(server.url, client, allow=allow))
    if allow.get("networks") == ["::ffff:0:0/96"]:
        # A mapped-IPv6 range does not cover the plain IPv4 loopback the server listens on.
        assert outcome.error_code == "http.address_refused"
    else:
        assert (outcome.status, outcome.output) == ("ok", {"ok": True})


async def test_a_pooled_connection_is_checked_for_the_service_reusing_it() -> None:
    with JsonHttpServer(lambda call: (200, {"ok": True})) as server:
        async with build_http_client() as shared:
            trusted = adapter(server.url, shared, name="trusted", allow={"loopback": True})
            assert (await get(trusted)).status == "ok"  # leaves a kept-alive connection
            outcome = await get(adapter(server.url, shared, name="untrusted"))
        assert outcome.error_code == "http.address_refused"
        assert len(server.calls) == 1


async def test_a_redirect_to_a_refused_address_is_not_followed(
    listener: RecordingListener, client: httpx.AsyncClient
) -> None:
    target = f"http://127.0.0.1:{listener.port}/admin?token=s3cret"

    def moved(call: HttpCall) -> RouteResult:
        return 302, {}, {"Location": target}

    with JsonHttpServer(moved) as server:
        outcome = await get(adapter(server.url, client, allow={"loopback": True}))

    assert outcome.error_code == "http.302"
    assert listener.connections == 0
    assert "s3cret" not in outcome.error_message
    assert str(listener.port) not in outcome.error_message


SECRET = "hunter2-S3CRET"


@pytest.mark.parametrize(
    "answer",
    [
        (500, {"error": f"db password {SECRET} rejected"}, {}),
        (402, {"message": SECRET}, {}),
        (302, {}, {"Location": f"http://internal.example/?k={SECRET}"}),
    ],
)
async def test_messages_carry_no_url_credentials_query_or_body(
    answer: RouteResult, client: httpx.AsyncClient
) -> None:
    with JsonHttpServer(lambda call: answer) as server:
        base_url = server.url.replace("http://", f"http://user:{SECRET}@")
        outcome = await get(adapter(base_url, client, allow={"loopback": True}), q=SECRET)

    assert outcome.status != "ok"
    assert outcome.error_message.startswith(f"GET answered {answer[0]}")
    for hidden in (SECRET, "127.0.0.1", "/items", "internal.example"):
        assert hidden not in outcome.error_message


async def test_unreachable_and_refused_messages_carry_no_credentials(
    client: httpx.AsyncClient,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base_url = f"http://user:{SECRET}@127.0.0.1:{port}"

    unreachable = await get(adapter(base_url, client, allow={"loopback": True}), q=SECRET)
    refused = await get(adapter(base_url, client), q=SECRET)

    assert unreachable.error_code == "http.unreachable"
    assert refused.error_code == "http.address_refused"
    for outcome in (unreachable, refused):
        assert SECRET not in outcome.error_message
        assert str(port) not in outcome.error_message


def test_idempotency_keys_become_ascii_and_stay_distinct() -> None:
    assert idempotency_header_value("order-1:charge") == "order-1:charge"
    encoded = idempotency_header_value("zamówienie-ü-日本:charge")
    assert encoded == quote("zamówienie-ü-日本", safe="") + ":charge"
    assert encoded.isascii()
    # "%" is encoded too, so an ASCII key cannot collide with an encoded one.
    assert idempotency_header_value(encoded) != encoded
    assert idempotency_header_value("a\r\nX-Injected: 1") == "a%0D%0AX-Injected:%201"


async def test_a_non_ascii_request_id_reaches_the_server_encoded(
    client: httpx.AsyncClient,
) -> None:
    request_id = "zamówienie-ü-日本"
    with JsonHttpServer(lambda call: (200, {"ok": True})) as server:
        target = adapter(server.url, client, allow={"loopback": True})
        first = await get(target, request_id=request_id)
        second = await get(target, request_id=request_id)

    assert (first.status, second.status) == ("ok", "ok")
    keys = [call.headers["idempotency-key"] for call in server.calls]
    assert keys == [quote(request_id, safe="") + ":get"] * 2


async def test_client_spans_record_no_credentials_or_query() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with JsonHttpServer(lambda call: (500, {"error": SECRET})) as server:
        base_url = server.url.replace("http://", f"http://user:{SECRET}@")
        async with build_http_client(tracer_provider=provider) as shared:
            outcome = await get(adapter(base_url, shared, allow={"loopback": True}), q=SECRET)

    assert outcome.error_code == "http.500"
    spans = exporter.get_finished_spans()
    assert spans
    for span in spans:
        recorded = f"{span.name} {dict(span.attributes or {})} {span.status} {span.events}"
        assert SECRET not in recorded
        assert "user" not in recorded


@pytest.mark.parametrize(
    "value",
    [
        "@evil.example",
        "user:pw@evil.example",
        "//evil.example/x",
        "evil.example:80",
        "http://evil.example/",
        "..%2F..%2Fadmin",
        "a/../../admin",
        "x?host=evil#frag",
    ],
)
async def test_event_data_never_chooses_scheme_host_or_port(
    value: str, client: httpx.AsyncClient
) -> None:
    service = HttpService.model_validate(
        {
            "kind": "http",
            "allow": {"loopback": True},
            "base_url": "http://127.0.0.1:1",  # replaced below by the server's URL
            "operations": {"get": {"path": "/{id}", "query": {"q": "{q}"}}},
        }
    )
    with JsonHttpServer(lambda call: (200, {"path": call.path})) as server:
        target = HttpAdapter(
            "svc", service.model_copy(update={"base_url": server.url}), client=client
        )
        outcome = await target.call(
            "get", {"id": value, "q": value}, context=CallContext.for_test(), timeout_s=5
        )

    # The one server got the call, with the value as one path segment and one query value.
    assert outcome.status == "ok", outcome.error_message
    [received] = server.calls
    assert len(received.segments) == 1
    assert received.query == {"q": [value]}
