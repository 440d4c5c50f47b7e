"""The demo's HTTP services for the chaos run: the same routes and data as
:mod:`handlers.demo.services`, with 20-200 ms of latency on every call, and a record
of every side-effecting call (charge, refund, shipment) with its Idempotency-Key.

One change of behaviour: a shipment for an order id starting with ``outage-`` is
answered 503 (the carrier is down for that order only), so a run can mix orders
that go through with orders that fail at the last step and must be undone.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from http import HTTPStatus
from typing import Any

from bench.chaos.oracle import Effect
from handlers.demo.http_server import HttpCall, JsonHttpServer, Route, RouteResult
from handlers.demo.services import COLLECTIONS, collection_route
from handlers.demo.shop import Payments, Shipments

OUTAGE_PREFIX = "outage-"
"""Orders whose id starts with this get a 503 from the shipments service."""


def _quiet_on_reset(handle_error: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    def handle(request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            handle_error(request, client_address)

    return handle


class ChaosServices:
    """Start the six demo HTTP services on free loopback ports, slowed down and recorded.

    ``effects`` lists every charge, refund and shipment call in the order each
    service served them (thread-safe to read once the services are stopped).
    """

    def __init__(self, *, latency_ms: tuple[int, int] = (20, 200), seed: int = 0) -> None:
        self.latency_ms = latency_ms
        self.effects: list[Effect] = []
        self.servers: dict[str, JsonHttpServer] = {}
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._payments = Payments()
        self._shipments = Shipments()
        self._stack = ExitStack()

    def __enter__(self) -> ChaosServices:
        routes: dict[str, Route] = {name: collection_route(name) for name in COLLECTIONS}
        routes["payments"] = self._payments_route
        routes["shipments"] = self._shipments_route
        for name, route in routes.items():
            server = JsonHttpServer(self._slowed(route), name=name)
            # A SIGKILLed coordinator resets its connections: not worth a traceback each.
            server._server.handle_error = _quiet_on_reset(  # type: ignore[method-assign,assignment]
                server._server.handle_error
            )
            self.servers[name] = self._stack.enter_context(server)
        return self

    def __exit__(self, *_: object) -> None:
        self._stack.close()

    @property
    def env(self) -> dict[str, str]:
        """The demo catalog's environment variables, pointing at these servers."""
        return {f"DEMO_{name.upper()}_URL": server.url for name, server in self.servers.items()}

    def _slowed(self, route: Route) -> Route:
        low, high = self.latency_ms

        def slowed(call: HttpCall) -> RouteResult:
            with self._lock:
                delay_ms = self._random.uniform(low, high)
            time.sleep(delay_ms / 1000)
            return route(call)

        return slowed

    def _payments_route(self, call: HttpCall) -> RouteResult:
        key = call.headers.get("idempotency-key", "")
        with self._lock:
            before = len(self._payments.ledger)
            answer = self._payments.route(call)
            added = self._payments.ledger[before:]
            status, payload = answer[0], answer[1]
            if call.segments == ["charges"]:
                if added:
                    outcome, ref = "charged", added[0][1]
                elif status == HTTPStatus.OK:
                    outcome, ref = "repeat", str(payload.get("id", ""))
                else:
                    outcome, ref = "declined", ""
                self.effects.append(Effect("payments", "charge", key, outcome, ref))
            elif len(call.segments) == 3:
                outcome = "refunded" if added else "noop"
                self.effects.append(Effect("payments", "refund", key, outcome, call.segments[1]))
        return answer

    def _shipments_route(self, call: HttpCall) -> RouteResult:
        key = call.headers.get("idempotency-key", "")
        body = call.body if isinstance(call.body, dict) else {}
        with self._lock:
            if str(body.get("order_id", "")).startswith(OUTAGE_PREFIX):
                self.effects.append(Effect("shipments", "create", key, "unavailable"))
                return (
                    HTTPStatus.SERVICE_UNAVAILABLE,
                    {"error": "the carrier is not answering"},
                    {"Retry-After": "0"},
                )
            new = key not in self._shipments.booked
            answer = self._shipments.route(call)
            if answer[0] == HTTPStatus.OK:
                tracking = str(answer[1].get("tracking_number", ""))
                outcome = "booked" if new else "repeat"
                self.effects.append(Effect("shipments", "create", key, outcome, tracking))
        return answer
