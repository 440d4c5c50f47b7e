"""The demo inventory service: a Kafka-native adapter written with the SDK.

Run it as a worker with ``orchestrator adapter handlers.demo.inventory:inventory``.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from handlers.demo.data import STOCK
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
