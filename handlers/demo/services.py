"""The demo's HTTP services on loopback: orders, users, stores and products (read
only, for order-details), payments and shipments (stateful, for place-order)."""

from __future__ import annotations

from contextlib import ExitStack
from http import HTTPStatus
from typing import Any

from handlers.demo import data
from handlers.demo.http_server import HttpCall, JsonHttpServer, RouteResult
from handlers.demo.shop import Payments, Shipments

COLLECTIONS: dict[str, dict[str, dict[str, Any]]] = {
    "orders": data.ORDERS,
    "users": data.USERS,
    "stores": data.STORES,
    "products": data.PRODUCTS,
}


def collection_route(name: str) -> Any:
    """A route serving ``GET /<name>/<id>`` from the demo data, 404 otherwise."""
    records = COLLECTIONS[name]

    def route(call: HttpCall) -> RouteResult:
        segments = call.segments
        if call.method != "GET" or len(segments) != 2 or segments[0] != name:
            return HTTPStatus.NOT_FOUND, {"error": f"no route {call.method} {call.path}"}
        record = records.get(segments[1])
        if record is None:
            return HTTPStatus.NOT_FOUND, {"error": f"{name[:-1]} {segments[1]} not found"}
        return HTTPStatus.OK, record

    return route


class DemoHttpServices:
    """Start the six demo HTTP services on free loopback ports.

    ``env`` maps the catalog's environment variables (``DEMO_ORDERS_URL``...) to
    the servers' base URLs. ``payments`` and ``shipments`` are the stateful
    services' own objects: their ledgers, and the shipments outage switch.
    """

    def __init__(self, *, base_port: int = 0) -> None:
        """``base_port`` 0 picks free ports; otherwise orders, users, stores,
        products, payments and shipments listen on ``base_port`` to ``base_port + 5``
        (the catalog's defaults are 8101 to 8106)."""
        self._stack = ExitStack()
        self._base_port = base_port
        self.servers: dict[str, JsonHttpServer] = {}
        self.payments = Payments()
        self.shipments = Shipments()

    def __enter__(self) -> DemoHttpServices:
        routes = {name: collection_route(name) for name in COLLECTIONS}
        routes["payments"] = self.payments.route
        routes["shipments"] = self.shipments.route
        for number, (name, route) in enumerate(routes.items()):
            port = self._base_port + number if self._base_port else 0
            self.servers[name] = self._stack.enter_context(
                JsonHttpServer(route, port=port, name=name)
            )
        return self

    def __exit__(self, *_: object) -> None:
        self._stack.close()

    @property
    def env(self) -> dict[str, str]:
        """Environment variables the demo catalog reads, pointing at these servers."""
        return {f"DEMO_{name.upper()}_URL": server.url for name, server in self.servers.items()}
