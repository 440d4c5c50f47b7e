"""The demo shop's data: orders, users, stores, products and stock levels."""

from __future__ import annotations

from typing import Any

ORDERS: dict[str, dict[str, Any]] = {
    "o-1": {
        "id": "o-1",
        "user_id": "u-1",
        "store_id": "s-1",
        "items": [
            {"product_id": "p-1", "qty": 2},
            {"product_id": "p-2", "qty": 1},
            {"product_id": "p-3", "qty": 4},
        ],
    },
    "o-2": {
        "id": "o-2",
        "user_id": "u-2",
        "store_id": "s-2",
        "items": [
            {"product_id": "p-2", "qty": 3},
            {"product_id": "p-404", "qty": 1},
        ],
    },
}

USERS: dict[str, dict[str, Any]] = {
    "u-1": {"id": "u-1", "name": "Ada Lovelace", "email": "ada@example.com", "tier": "gold"},
    "u-2": {"id": "u-2", "name": "Alan Turing", "email": "alan@example.com", "tier": "silver"},
}

STORES: dict[str, dict[str, Any]] = {
    "s-1": {"id": "s-1", "name": "Soho", "city": "London", "opening_hours": "09-21"},
    "s-2": {"id": "s-2", "name": "Centrum", "city": "Utrecht", "opening_hours": "10-18"},
}

PRODUCTS: dict[str, dict[str, Any]] = {
    "p-1": {
        "id": "p-1",
        "name": "Espresso beans 1kg",
        "price": 24.5,
        "sku": "EB-1",
        "weight_g": 1000,
    },
    "p-2": {"id": "p-2", "name": "Milk jug", "price": 12.0, "sku": "MJ-2", "weight_g": 300},
    "p-3": {"id": "p-3", "name": "Grinder", "price": 149.0, "sku": "GR-3", "weight_g": 2100},
}

STOCK: dict[str, int] = {"p-1": 12, "p-2": 3, "p-3": 0}
