"""FlowBuilder: a flow declared in Python is the same model a flow file gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.flow import CompensationDefinition, FlowDefinition, RetryPolicy
from orchestrator.builder import FlowBuilder, StepRef
from orchestrator.errors import FlowLoadError
from orchestrator.flow_files import read_flow_definition

DEMO_FLOW = Path(__file__).parents[2] / "handlers" / "demo" / "flows" / "order-details.yaml"


def build_order_details() -> FlowDefinition:
    flow = FlowBuilder(
        "order-details",
        description="An order with its customer, store and the in-stock products, with the total.",
        input_schema={
            "type": "object",
            "required": ["order_id"],
            "properties": {"order_id": {"type": "string", "minLength": 1}},
            "additionalProperties": False,
        },
        timeout_ms=5000,
    )
    order = flow.step(
        "order", service="orders", operation="get_order", input={"order_id": "input.order_id"}
    )
    flow.step(
        "user", service="users", operation="get_user", input={"user_id": order.path("user_id")}
    )
    flow.step(
        "store", service="stores", operation="get_store", input={"store_id": order.path("store_id")}
    )
    flow.step(
        "products",
        service="products",
        operation="get_product",
        for_each=order.path("items"),
        input={"product_id": "item.product_id"},
        output={
            "product_id": "reply.id",
            "name": "reply.name",
            "unit_price": "reply.price",
            "qty": "item.qty",
            "line_total": "multiply(reply.price, item.qty)",
        },
        optional=True,
    )
    flow.step(
        "stock",
        service="inventory",
        operation="stock_levels",
        input={"product_ids": order.path("items[]", "product_id")},
        output={"in_stock": "reply.levels[?available > `0`].product_id"},
    )
    in_stock = "where_in(products, 'product_id', stock.in_stock)"
    return flow.result(
        {
            "order_id": order.path("id"),
            "customer": {"name": "user.name", "email": "user.email"},
            "store": "{name: store.name, city: store.city}",
            "lines": in_stock,
            "total": f"round(sum({in_stock}[].line_total), `2`)",
        }
    ).build()


def test_builder_gives_the_same_definition_as_the_demo_file() -> None:
    built = build_order_details()
    from_file = read_flow_definition(DEMO_FLOW)

    assert built.model_dump() == from_file.model_dump()
    assert built == from_file


def test_defaults_when_nothing_is_given() -> None:
    flow = FlowBuilder("minimal")
    ref = flow.step("a", service="s", operation="o")

    result = flow.result("a").build()

    assert ref == StepRef("a")
    assert result.input_schema == {"type": "object"}
    assert result.defaults.timeout_ms == 10_000
    assert result.steps["a"].input == {}
    assert result.steps["a"].after == []


def test_after_accepts_refs_and_names() -> None:
    flow = FlowBuilder("f")
    first = flow.step("first", service="s", operation="o")
    flow.step("second", service="s", operation="o")
    flow.step("third", service="s", operation="o", after=[first, "second"], timeout_ms=5)

    built = flow.result("third").build()

    assert built.steps["third"].after == ["first", "second"]
    assert built.steps["third"].timeout_ms == 5


def test_duplicate_step_is_rejected() -> None:
    flow = FlowBuilder("f")
    flow.step("a", service="s", operation="o")

    with pytest.raises(FlowLoadError, match="flow 'f' already has a step 'a'"):
        flow.step("a", service="t", operation="p")


def test_missing_result_is_rejected() -> None:
    flow = FlowBuilder("f")
    flow.step("a", service="s", operation="o")

    with pytest.raises(FlowLoadError, match=r"flow 'f' has no result: call \.result"):
        flow.build()


@pytest.mark.parametrize(
    ("name", "with_step", "location"),
    [("Bad Name", True, "name:"), ("f", False, "steps:")],
)
def test_invalid_flow_is_a_flow_load_error(name: str, with_step: bool, location: str) -> None:
    flow = FlowBuilder(name)
    if with_step:
        flow.step("a", service="s", operation="o")

    with pytest.raises(FlowLoadError) as caught:
        flow.result("a").build()

    assert str(caught.value).startswith(f"flow '{name}' is invalid:\n  {location}")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [((), "order"), (("user_id",), "order.user_id"), (("items[]", "qty"), "order.items[].qty")],
)
def test_step_ref_path(fields: tuple[str, ...], expected: str) -> None:
    ref = StepRef("order")

    assert ref.path(*fields) == expected
    assert str(ref) == "order"


def test_builder_declares_saga_settings_like_a_flow_file() -> None:
    builder = FlowBuilder(
        "place-order", version=3, deadline_ms=15_000, retry=RetryPolicy(attempts=3)
    )
    reserve = builder.step(
        "reserve",
        service="inventory",
        operation="reserve",
        input={"order_id": "input.order_id"},
        retry=RetryPolicy(attempts=5),
        compensate=CompensationDefinition(
            operation="release", input={"reservation_id": "reserve.reservation_id"}
        ),
    )
    builder.step(
        "recommend",
        service="inventory",
        operation="recommend",
        input={"id": reserve.path("reservation_id")},
        when="input.include_recommendations",
        default=[],
    )
    builder.step(
        "lines",
        service="inventory",
        operation="get",
        for_each="input.items",
        input={"id": "item"},
        concurrency=8,
    )
    built = builder.result({"r": "reserve", "rec": "recommend", "lines": "lines"}).build()

    assert built == FlowDefinition.model_validate(
        {
            "name": "place-order",
            "version": 3,
            "deadline_ms": 15_000,
            "defaults": {"retry": {"attempts": 3}},
            "steps": {
                "reserve": {
                    "service": "inventory",
                    "operation": "reserve",
                    "input": {"order_id": "input.order_id"},
                    "retry": {"attempts": 5},
                    "compensate": {
                        "operation": "release",
                        "input": {"reservation_id": "reserve.reservation_id"},
                    },
                },
                "recommend": {
                    "service": "inventory",
                    "operation": "recommend",
                    "input": {"id": "reserve.reservation_id"},
                    "when": "input.include_recommendations",
                    "default": [],
                },
                "lines": {
                    "service": "inventory",
                    "operation": "get",
                    "for_each": "input.items",
                    "input": {"id": "item"},
                    "concurrency": 8,
                },
            },
            "result": {"r": "reserve", "rec": "recommend", "lines": "lines"},
        }
    )
    assert built.steps["recommend"].has_default
    assert not built.steps["reserve"].has_default
