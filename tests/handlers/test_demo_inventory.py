"""The demo inventory adapter, invoked in-process."""

from __future__ import annotations

import pytest

from handlers.context import CallContext
from handlers.demo.data import STOCK
from handlers.demo.inventory import inventory


def test_inventory_serves_stock_levels_on_its_demo_topic() -> None:
    assert list(inventory.operations) == ["stock_levels", "reserve", "release"]
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


async def test_reserve_is_idempotent_per_key_and_release_converges() -> None:
    order = {"order_id": "o-9", "items": [{"product_id": "p-1", "qty": 2}]}
    first_context = CallContext.for_test(request_id="r-res", call="reserve")
    retry_context = CallContext(
        request_id="r-res",
        call="reserve",
        attempt=2,
        idempotency_key="r-res:reserve",
        deadline_ms=2**62,
    )

    first = await inventory.invoke("reserve", order, first_context)
    again = await inventory.invoke("reserve", order, retry_context)
    reservation_id = first.output["reservation_id"]
    released = await inventory.invoke("release", {"reservation_id": reservation_id})
    released_again = await inventory.invoke("release", {"reservation_id": reservation_id})

    assert first.status == again.status == "ok"
    assert again.output == first.output, "a retried reserve returns the first reservation"
    assert released.output == {"reservation_id": reservation_id, "released": True}
    assert released_again.output == {"reservation_id": reservation_id, "released": False}
    assert released_again.status == "ok", "releasing twice still succeeds"


async def test_reserve_refuses_more_than_the_stock() -> None:
    outcome = await inventory.invoke(
        "reserve", {"order_id": "o-9", "items": [{"product_id": "p-3", "qty": 1}]}
    )

    assert (outcome.status, outcome.error_code) == (
        "business_error",
        "inventory.insufficient_stock",
    )
