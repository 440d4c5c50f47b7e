"""The demo inventory service: a Kafka-native adapter written with the SDK.

Run it as a worker with ``orchestrator adapter handlers.demo.inventory:inventory``.

``reserve`` and ``release`` serve the place-order saga. Reservations are kept in
memory by idempotency key: a retried reserve returns the first reservation, and a
release is idempotent (releasing an unknown or released reservation succeeds), so
a retried compensation converges.
"""

from __future__ import annotations

import hashlib

from pydantic import BaseModel, Field

from handlers.context import CallContext
from handlers.demo.data import STOCK
from handlers.errors import BusinessError
from handlers.sdk import Service

inventory = Service("inventory", command_topic="demo.inventory.commands")


class StockQuery(BaseModel):
    """Which products to report on."""

    product_ids: list[str] = Field(max_length=1000)


class ProductStock(BaseModel):
    """Units available of one product (0 for an unknown product)."""

    product_id: str
    available: int


class StockLevels(BaseModel):
    """Stock of every product asked for, in the order asked."""

    levels: list[ProductStock]


@inventory.operation("stock_levels")
async def stock_levels(query: StockQuery) -> StockLevels:
    """Report stock levels for the given products."""
    return StockLevels(
        levels=[
            ProductStock(product_id=pid, available=STOCK.get(pid, 0)) for pid in query.product_ids
        ]
    )


class OrderLine(BaseModel):
    """A product and how many units."""

    product_id: str
    qty: int = Field(gt=0)


class ReserveRequest(BaseModel):
    """Hold stock for an order."""

    order_id: str
    items: list[OrderLine] = Field(min_length=1, max_length=100)


class Reservation(BaseModel):
    """Stock held for an order until it is released."""

    reservation_id: str
    order_id: str
    items: list[OrderLine]


class ReleaseRequest(BaseModel):
    """Give held stock back."""

    reservation_id: str


class Released(BaseModel):
    """Whether this call released the reservation (False: it was not held)."""

    reservation_id: str
    released: bool


RESERVATIONS: dict[str, Reservation] = {}
"""Held reservations by idempotency key (this process's memory; a demo)."""


@inventory.operation
async def reserve(request: ReserveRequest, ctx: CallContext) -> Reservation:
    """Hold the order's items; refused when a product has too little stock."""
    held = RESERVATIONS.get(ctx.idempotency_key)
    if held is not None:
        return held  # a retry or a re-run of the same call: the same reservation
    for line in request.items:
        if STOCK.get(line.product_id, 0) < line.qty:
            raise BusinessError(
                "inventory.insufficient_stock",
                f"only {STOCK.get(line.product_id, 0)} of {line.product_id} in stock, "
                f"{line.qty} wanted",
            )
    digest = hashlib.sha256(ctx.idempotency_key.encode()).hexdigest()[:8]
    reservation = Reservation(
        reservation_id=f"res-{digest}", order_id=request.order_id, items=request.items
    )
    RESERVATIONS[ctx.idempotency_key] = reservation
    return reservation


@inventory.operation
async def release(request: ReleaseRequest) -> Released:
    """Release a reservation; releasing one that is not held succeeds too."""
    for key, held in list(RESERVATIONS.items()):
        if held.reservation_id == request.reservation_id:
            del RESERVATIONS[key]
            return Released(reservation_id=request.reservation_id, released=True)
    return Released(reservation_id=request.reservation_id, released=False)
