"""The benchmark's downstream: one fast keep-alive JSON service on loopback.

Every system in the benchmark composes the same "order details" from it:

1. ``GET /orders/{order_id}``: ``{"id", "user_id", "store_id", "items": [5 x
   {"product_id", "qty"}]}``;
2. then, concurrently, ``GET /users/{user_id}``, ``GET /stores/{store_id}`` and
   ``GET /products/{product_id}`` for each of the five items.

Order ``o-<n>`` (any integer ``n``) names user ``u-<n mod USERS>``, store
``s-<n mod STORES>`` and products ``p-<(5n + k) mod PRODUCTS>``, so a workload that
sends many different orders repeats users and stores (the cache workload) while
products vary. Bodies are built once and served from memory.

``--delay-ms`` (or ``?delay_ms=`` on any call) makes every answer wait that long
first: the slow-downstream workload. ``GET /stats`` answers the number of calls
served per route, so a run can check how many calls really reached the service.
``POST /v1/traces`` is an OTLP/HTTP trace sink (the traced orchestrator exports its
spans there), so tracing's cost includes really exporting them.

Run: ``python -m bench.mock_service [--port P] [--delay-ms D]``; it prints one JSON
line ``{"url": ...}`` once it listens, and stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections import Counter

import orjson
from aiohttp import web

USERS = 50
STORES = 10
PRODUCTS = 1000
ITEMS_PER_ORDER = 5


def order(number: int) -> dict[str, object]:
    """The order ``o-<number>``."""
    return {
        "id": f"o-{number}",
        "user_id": f"u-{number % USERS}",
        "store_id": f"s-{number % STORES}",
        "items": [
            {"product_id": f"p-{(number * ITEMS_PER_ORDER + k) % PRODUCTS}", "qty": 1 + k % 3}
            for k in range(ITEMS_PER_ORDER)
        ],
    }


def user(number: int) -> dict[str, object]:
    return {
        "id": f"u-{number}",
        "name": f"User {number}",
        "email": f"user{number}@example.com",
        "tier": "gold" if number % 3 == 0 else "silver",
    }


def store(number: int) -> dict[str, object]:
    return {"id": f"s-{number}", "name": f"Store {number}", "city": f"City {number % 7}"}


def product(number: int) -> dict[str, object]:
    return {
        "id": f"p-{number}",
        "name": f"Product {number}",
        "price": round(1.5 + (number % 97) * 0.75, 2),
        "sku": f"SKU-{number:05d}",
    }


def compose(
    order_body: dict[str, object],
    user_body: dict[str, object],
    store_body: dict[str, object],
    products: list[dict[str, object]],
) -> dict[str, object]:
    """The composed result every system returns (the direct systems and the peers)."""
    items = order_body["items"]
    assert isinstance(items, list)
    lines = [
        {
            "product_id": body["id"],
            "name": body["name"],
            "qty": item["qty"],
            "line_total": round(float(body["price"]) * int(item["qty"]), 2),  # type: ignore[arg-type]
        }
        for item, body in zip(items, products, strict=True)
    ]
    return {
        "order_id": order_body["id"],
        "customer": {"name": user_body["name"], "email": user_body["email"]},
        "store": {"name": store_body["name"], "city": store_body["city"]},
        "lines": lines,
        "total": round(sum(float(line["line_total"]) for line in lines), 2),
    }


_BUILDERS = {"orders": order, "users": user, "stores": store, "products": product}


class MockService:
    """The aiohttp application; bodies are cached as bytes after their first build."""

    def __init__(self, *, delay_ms: int = 0) -> None:
        self.delay_ms = delay_ms
        self.calls: Counter[str] = Counter()
        self.trace_exports = 0
        self.trace_bytes = 0
        self._bodies: dict[tuple[str, str], bytes] = {}

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/stats", self._stats)
        app.router.add_post("/v1/traces", self._traces)
        app.router.add_get("/{kind}/{key}", self._get)
        return app

    async def _traces(self, request: web.Request) -> web.Response:
        """An OTLP/HTTP trace sink for the traced orchestrator: counts exports and
        bytes, answers an empty ExportTraceServiceResponse (an empty protobuf)."""
        body = await request.read()
        self.trace_exports += 1
        self.trace_bytes += len(body)
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def _stats(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(dict(self.calls)), content_type="application/json")

    async def _get(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        key = request.match_info["key"]
        builder = _BUILDERS.get(kind)
        prefix, _, digits = key.partition("-")
        if builder is None or not digits.isdigit() or prefix != kind[0]:
            return web.Response(status=404, body=b'{"error": "not found"}')
        self.calls[kind] += 1
        delay_ms = int(request.query.get("delay_ms", self.delay_ms))
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        body = self._bodies.get((kind, key))
        if body is None:
            body = self._bodies[(kind, key)] = orjson.dumps(builder(int(digits)))
        return web.Response(body=body, content_type="application/json")


async def serve(*, port: int, delay_ms: int) -> None:
    service = MockService(delay_ms=delay_ms)
    runner = web.AppRunner(service.app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096, reuse_address=True)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(orjson.dumps({"url": f"http://127.0.0.1:{bound}"}).decode(), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    with contextlib.suppress(Exception):
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay-ms", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.run(serve(port=args.port, delay_ms=args.delay_ms))
    except ImportError:
        asyncio.run(serve(port=args.port, delay_ms=args.delay_ms))
    return 0


if __name__ == "__main__":
    sys.exit(main())
