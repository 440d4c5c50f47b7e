"""compile_flow: dependencies, ordering, and every static check, all reported at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from contracts.flow import FlowDefinition
from orchestrator.catalog import LoadedCatalog, catalog_from_data
from orchestrator.errors import FlowLoadError
from orchestrator.flow import CompiledFlow, compile_flow
from orchestrator.flow_files import read_flow_definition

DEMO_FLOW = Path(__file__).parents[2] / "handlers" / "demo" / "flows" / "order-details.yaml"

CATALOG_YAML = """\
services:
  orders:
    kind: http
    base_url: http://orders.test
    operations:
      get_order: {path: "/orders/{order_id}"}
      search:
        method: POST
        path: /orders
        query: {q: "{term}"}
        headers: {X-Tenant: "{tenant}"}
        body: {limit: "{limit}"}
  users: {kind: http, base_url: http://u.test, operations: {get_user: {path: "/u/{user_id}"}}}
  stores: {kind: http, base_url: http://s.test, operations: {get_store: {path: "/s/{store_id}"}}}
  products: {kind: http, base_url: http://p.t, operations: {get_product: {path: "/{product_id}"}}}
  inventory: {kind: kafka, operations: [stock_levels]}
  anything: {kind: kafka}
  stock_py: {kind: python, adapter: "handlers.demo.inventory:inventory"}
"""
CATALOG = catalog_from_data(yaml.safe_load(CATALOG_YAML), source="catalog.yaml", environ={})


def compile_steps(
    steps: dict[str, Any], result: Any = "input", *, catalog: LoadedCatalog = CATALOG, **extra: Any
) -> CompiledFlow:
    definition = FlowDefinition.model_validate(
        {"name": "f", "steps": steps, "result": result, **extra}
    )
    return compile_flow(definition, catalog=catalog, source="flows/f.yaml")


def any_step(**fields: Any) -> dict[str, Any]:
    return {"service": "anything", "operation": "op", **fields}


def test_demo_flow_dependencies() -> None:
    flow = compile_flow(read_flow_definition(DEMO_FLOW), catalog=CATALOG, source=str(DEMO_FLOW))

    depends = {step.name: step.depends_on for step in flow.steps}
    assert depends == {
        "order": frozenset(),
        "user": {"order"},
        "store": {"order"},
        "products": {"order"},
        "stock": {"order"},
    }
    assert flow.steps[0].name == "order"
    assert flow.step("products").for_each is not None
    assert flow.step("products").optional is True
    assert {step.timeout_ms for step in flow.steps} == {5000}
    assert flow.source == str(DEMO_FLOW)
    with pytest.raises(KeyError):
        flow.step("nope")


def test_after_adds_dependencies_and_order_respects_them() -> None:
    flow = compile_steps(
        {
            "last": any_step(after=["middle"]),
            "middle": any_step(input={"v": "first.x"}),
            "first": any_step(timeout_ms=250),
        },
        defaults={"timeout_ms": 900},
    )

    assert [step.name for step in flow.steps] == ["first", "middle", "last"]
    assert flow.step("last").depends_on == {"middle"}
    assert flow.step("middle").depends_on == {"first"}
    assert (flow.step("first").timeout_ms, flow.step("last").timeout_ms) == (250, 900)


def test_for_each_may_read_item_and_index_and_output_may_read_reply() -> None:
    flow = compile_steps(
        {
            "src": any_step(),
            "each": any_step(
                for_each="src.items",
                input={"v": "item", "i": "index"},
                output={"r": "reply.x", "q": "item.qty"},
            ),
        },
        result={"each": "each", "first": "src"},
    )

    assert flow.step("each").depends_on == {"src"}
    assert flow.result.evaluate({"each": [1], "src": 2}) == {"each": [1], "first": 2}


def test_input_validator_is_the_flow_schema() -> None:
    flow = compile_steps(
        {"a": any_step()}, input_schema={"type": "object", "required": ["order_id"]}
    )

    assert flow.input_validator.is_valid({"order_id": "o"})
    assert not flow.input_validator.is_valid({})


@pytest.mark.parametrize(
    ("steps", "extra", "fragments"),
    [
        pytest.param(
            {"a": any_step(input={"v": "b.x"}), "b": any_step(input={"v": "a.x"})},
            {},
            ["steps form a cycle: a -> b -> a"],
            id="cycle",
        ),
        pytest.param(
            {"a": any_step(after=["b"]), "b": any_step(after=["c"]), "c": any_step(after=["a"])},
            {},
            ["cycle", "a -> b -> c -> a"],
            id="cycle-after",
        ),
        pytest.param(
            {"a": {"service": "nope", "operation": "x"}},
            {},
            [
                "step 'a': unknown service 'nope'",
                "(services in catalog.yaml: anything, inventory, orders, products, stock_py, "
                "stores, users)",
            ],
            id="unknown-service",
        ),
        pytest.param(
            {"a": {"service": "inventory", "operation": "restock"}},
            {},
            ["step 'a': service 'inventory' has no operation 'restock' (it has: stock_levels)"],
            id="unknown-kafka-operation",
        ),
        pytest.param(
            {"a": {"service": "orders", "operation": "cancel", "input": {"order_id": "input"}}},
            {},
            ["service 'orders' has no operation 'cancel' (it has: get_order, search)"],
            id="unknown-http-operation",
        ),
        pytest.param(
            {"a": {"service": "stock_py", "operation": "nope"}},
            {},
            ["service 'stock_py' has no operation 'nope' (it has: release, reserve, stock_levels)"],
            id="unknown-python-operation",
        ),
        pytest.param(
            {"a": any_step(input={"v": "ghost.x"})},
            {},
            ["step 'a' input: reads 'ghost', which is not a step of this flow nor 'input'"],
            id="unknown-step-read",
        ),
        pytest.param(
            {"a": any_step(input={"v": "a.x"})},
            {},
            ["step 'a' input: reads 'a'"],
            id="reads-itself",
        ),
        pytest.param(
            {"a": any_step(input={"v": "item.x"})},
            {},
            ["step 'a' input: 'item' is not available here"],
            id="item-outside-for_each",
        ),
        pytest.param(
            {"a": any_step(for_each="item.xs")},
            {},
            ["step 'a' for_each: 'item' is not available here"],
            id="item-in-for_each",
        ),
        pytest.param(
            {"a": any_step(input={"v": "reply.x"})},
            {},
            ["step 'a' input: 'reply' is not available here"],
            id="reply-in-input",
        ),
        pytest.param(
            {"a": any_step(input={"v": "input.["})},
            {},
            ["step 'a' input: field 'v': 'input.[' is not a valid JMESPath expression"],
            id="bad-expression",
        ),
        pytest.param(
            {"a": any_step(output={"deep": {"v": "reply.["}})},
            {},
            ["step 'a' output: field 'deep': field 'v': 'reply.['"],
            id="bad-nested-output",
        ),
        pytest.param(
            {"item": any_step()},
            {},
            ["step 'item': 'item' is reserved for the expression context; rename it"],
            id="reserved-name",
        ),
        pytest.param(
            {"a": any_step(after=["zz"])},
            {},
            ["step 'a' after: 'zz' is not another step of this flow"],
            id="after-unknown",
        ),
        pytest.param(
            {"a": {"service": "orders", "operation": "get_order", "input": {"id": "input.x"}}},
            {},
            [
                "step 'a': orders.get_order needs input field 'order_id', which the step's "
                "input does not set"
            ],
            id="template-path-field",
        ),
        pytest.param(
            {"a": {"service": "orders", "operation": "search", "input": {"term": "input.t"}}},
            {},
            ["needs input field 'limit'", "needs input field 'tenant'"],
            id="template-body-and-header-fields",
        ),
        pytest.param(
            {"a": any_step()},
            {"input_schema": {"type": "bogus"}},
            ["input_schema is not a valid JSON Schema: "],
            id="bad-input-schema",
        ),
        pytest.param(
            {"a": any_step()},
            {"result": {"v": "item"}},
            ["result: 'item' is not available here"],
            id="item-in-result",
        ),
        pytest.param(
            {"a": any_step()},
            {"result": {"v": "ghost"}},
            ["result: reads 'ghost'"],
            id="unknown-read-in-result",
        ),
        pytest.param(
            {"a": {"service": "nope", "operation": "x"}, "b": any_step(input={"v": "ghost"})},
            {"result": "a.["},
            [
                "step 'a': unknown service 'nope'",
                "step 'b' input: reads 'ghost'",
                "result: 'a.[' is not a valid JMESPath expression",
            ],
            id="all-problems-at-once",
        ),
    ],
)
def test_invalid_flow_names_the_file_and_the_problem(
    steps: dict[str, Any], extra: dict[str, Any], fragments: list[str]
) -> None:
    with pytest.raises(FlowLoadError) as caught:
        compile_steps(steps, **extra)

    message = str(caught.value)
    assert message.startswith("flows/f.yaml: flow 'f' is invalid:\n  ")
    for fragment in fragments:
        assert fragment in message
    assert caught.value.code == "flow.invalid"


def test_each_problem_is_on_its_own_line() -> None:
    with pytest.raises(FlowLoadError) as caught:
        compile_steps({"a": any_step(input={"v": "ghost"}), "b": any_step(after=["zz"])})

    lines = str(caught.value).splitlines()
    assert lines[1:] == [
        "  step 'a' input: reads 'ghost', which is not a step of this flow nor 'input'",
        "  step 'b' after: 'zz' is not another step of this flow",
    ]


@pytest.mark.parametrize("name", ["a#1", "get-order", "Order", "a:b"])
def test_step_names_follow_the_declared_pattern(name: str) -> None:
    with pytest.raises((FlowLoadError, ValidationError)):
        compile_steps({name: any_step()})
