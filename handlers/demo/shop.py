"""The demo's stateful HTTP services for the place-order saga: payments and shipments.

Both honour the ``Idempotency-Key`` header the orchestrator sends: a repeated
charge (a retry, or a re-run after a restart) returns the first charge, and a
repeated refund or shipment changes nothing. Each keeps a ledger of what it did,
so the demo reports what the services saw, not what it assumes.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from handlers.demo.http_server import HttpCall, RouteResult

DECLINED_CARD = "4000-0000-0000-0002"
"""A card the payments service refuses (402), as card networks' test cards do."""


def _short_id(prefix: str, key: str) -> str:
    return f"{prefix}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


@dataclass
class Payments:
    """``POST /charges`` and ``POST /charges/{id}/refund``."""

    ledger: list[tuple[str, str, float]] = field(default_factory=list)
    """``(event, charge id, amount)``: ``charged`` or ``refunded``, in order."""
    _charges: dict[str, dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def route(self, call: HttpCall) -> RouteResult:
        """Serve one request."""
        segments = call.segments
        with self._lock:
            if call.method == "POST" and segments == ["charges"]:
                return self._charge(call)
            if call.method == "POST" and len(segments) == 3 and segments[2] == "refund":
                return self._refund(segments[1])
        return HTTPStatus.NOT_FOUND, {"error": f"no route {call.method} {call.path}"}

    def _charge(self, call: HttpCall) -> RouteResult:
        key = call.headers.get("idempotency-key", "")
        if not key:
            return HTTPStatus.BAD_REQUEST, {"error": "an Idempotency-Key header is required"}
        body = call.body if isinstance(call.body, dict) else {}
        if body.get("card") == DECLINED_CARD:
            return HTTPStatus.PAYMENT_REQUIRED, {"error": "card declined by the issuer"}
        existing = self._charges.get(key)
        if existing is None:
            amount = float(body.get("amount", 0))
            existing = {"id": _short_id("ch", key), "amount": amount, "refunded": False}
            self._charges[key] = existing
            self.ledger.append(("charged", existing["id"], amount))
        return HTTPStatus.OK, existing

    def _refund(self, charge_id: str) -> RouteResult:
        for charge in self._charges.values():
            if charge["id"] == charge_id:
                if not charge["refunded"]:
                    charge["refunded"] = True
                    self.ledger.append(("refunded", charge_id, charge["amount"]))
                return HTTPStatus.OK, {"id": charge_id, "refunded": True}
        # Undo of something that never happened: done, so a retried undo converges.
        return HTTPStatus.OK, {"id": charge_id, "refunded": False}


@dataclass
class Shipments:
    """``POST /shipments``; ``down`` simulates the carrier's outage (503)."""

    down: bool = False
    attempts: int = 0
    """Requests received, including the ones answered 503."""
    booked: dict[str, dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def route(self, call: HttpCall) -> RouteResult:
        """Serve one request."""
        if call.method != "POST" or call.segments != ["shipments"]:
            return HTTPStatus.NOT_FOUND, {"error": f"no route {call.method} {call.path}"}
        with self._lock:
            self.attempts += 1
            if self.down:
                return (
                    HTTPStatus.SERVICE_UNAVAILABLE,
                    {"error": "the carrier is not answering"},
                    {"Retry-After": "0"},
                )
            key = call.headers.get("idempotency-key", "")
            body = call.body if isinstance(call.body, dict) else {}
            shipment = self.booked.get(key)
            if shipment is None:
                shipment = {
                    "tracking_number": _short_id("TRK", key).upper(),
                    "order_id": body.get("order_id"),
                }
                self.booked[key] = shipment
            return HTTPStatus.OK, shipment
