"""The demo inventory adapter, invoked in-process."""

from __future__ import annotations

import pytest

from handlers.demo.data import STOCK
from handlers.demo.inventory import inventory


def test_inventory_serves_stock_levels_on_its_demo_topic() -> None:
    assert list(inventory.operations) == ["stock_levels"]
    assert inventory.command_topic == "demo.inventory.commands"


@pytest.mark.parametrize(
    ("product_ids", "levels"),
    [
        (["p-1"], [("p-1", 12)]),
        (["p-3", "p-2", "p-1"], [("p-3", 0), ("p-2", 3), ("p-1", 12)]),
        (["p-404", "p-1", "p-404"], [("p-404", 0), ("p-1", 12), ("p-404", 0)]),
        ([], []),
    ],
)
async def test_stock_levels_in_the_order_asked(
    product_ids: list[str], levels: list[tuple[str, int]]
) -> None:
    outcome = await inventory.invoke("stock_levels", {"product_ids": product_ids})

    assert outcome.status == "ok"
    assert outcome.output == {
        "levels": [{"product_id": pid, "available": available} for pid, available in levels]
    }


def test_demo_data_is_what_the_table_assumes() -> None:
    assert STOCK == {"p-1": 12, "p-2": 3, "p-3": 0}


async def test_too_many_products_is_invalid_input() -> None:
    outcome = await inventory.invoke("stock_levels", {"product_ids": ["p"] * 1001})

    assert (outcome.status, outcome.error_code) == ("business_error", "input.invalid")
    assert "product_ids" in outcome.error_message
