"""The test harness: FlowRun steps a real saga, run_flow answers from a table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from handlers.demo import data
from handlers.outcome import CallOutcome
from orchestrator.catalog import load_catalog
from orchestrator.flow import CompiledFlow, compile_flow
from orchestrator.flow_files import read_flow_definition
from orchestrator.testing import Answer, FlowRun, run_flow

DEMO = Path(__file__).parents[2] / "handlers" / "demo" / "flows"


@pytest.fixture(scope="module")
def flow() -> CompiledFlow:
    catalog = load_catalog(DEMO / "services.yaml", environ={})
    return compile_flow(read_flow_definition(DEMO / "order-details.yaml"), catalog=catalog)


def lookup(records: dict[str, dict[str, Any]], field: str) -> Answer:
    def answer(call_input: dict[str, Any]) -> Any:
        record = records.get(call_input[field])
        if record is None:
            return CallOutcome.business_error("http.404", f"{call_input[field]} not found")
        return record

    return answer


def stock(call_input: dict[str, Any]) -> dict[str, Any]:
    return {
        "levels": [
            {"product_id": pid, "available": data.STOCK.get(pid, 0)}
            for pid in call_input["product_ids"]
        ]
    }


ANSWERS: dict[str, Answer] = {
    "orders.get_order": lookup(data.ORDERS, "order_id"),
    "users.get_user": lookup(data.USERS, "user_id"),
    "stores.get_store": lookup(data.STORES, "store_id"),
    "products.get_product": lookup(data.PRODUCTS, "product_id"),
    "inventory.stock_levels": stock,
}


def test_run_flow_composes_the_demo_result(flow: CompiledFlow) -> None:
    result = run_flow(flow, {"order_id": "o-1"}, answers=ANSWERS)

    assert result["status"] == "completed"
    assert result["errors"] == []
    assert result["data"] == {
        "order_id": "o-1",
        "customer": {"name": "Ada Lovelace", "email": "ada@example.com"},
        "store": {"name": "Soho", "city": "London"},
        "lines": [  # p-3 has no stock and is left out
            {
                "product_id": "p-1",
                "name": "Espresso beans 1kg",
                "unit_price": 24.5,
                "qty": 2,
                "line_total": 49.0,
            },
            {
                "product_id": "p-2",
                "name": "Milk jug",
                "unit_price": 12.0,
                "qty": 1,
                "line_total": 12.0,
            },
        ],
        "total": 61.0,
    }
    assert {s["step"]: (s["status"], s["calls"]) for s in result["steps"]} == {
        "order": ("ok", 1),
        "user": ("ok", 1),
        "store": ("ok", 1),
        "products": ("ok", 3),
        "stock": ("ok", 1),
    }


def test_optional_step_failure_is_reported_not_fatal(flow: CompiledFlow) -> None:
    result = run_flow(flow, {"order_id": "o-2"}, answers=ANSWERS)

    assert result["status"] == "completed"
    assert [line["product_id"] for line in result["data"]["lines"]] == ["p-2"]
    assert result["data"]["total"] == 36.0
    [error] = result["errors"]
    assert (error["code"], error["call"], error["adapter_code"]) == (
        "step.business_error",
        "products#1",
        "http.404",
    )


def test_required_step_failure_fails_the_request(flow: CompiledFlow) -> None:
    result = run_flow(flow, {"order_id": "o-404"}, answers=ANSWERS)

    assert (result["status"], result["data"]) == ("failed", None)
    assert [(e["step"], e["adapter_code"]) for e in result["errors"]] == [("order", "http.404")]


def test_run_flow_needs_an_answer_for_every_operation(flow: CompiledFlow) -> None:
    partial = {key: value for key, value in ANSWERS.items() if key != "users.get_user"}

    with pytest.raises(KeyError, match=r"no answer for users\.get_user \(call user\)"):
        run_flow(flow, {"order_id": "o-1"}, answers=partial)


def test_flow_run_dispatches_in_dependency_order(flow: CompiledFlow) -> None:
    run = FlowRun(flow, input={"order_id": "o-1"}, request_id="r-7", now_ms=1000)

    assert run.pending_calls() == ["order"]
    order_call = run.call("order")
    assert (order_call.service, order_call.operation) == ("orders", "get_order")
    assert order_call.input == {"order_id": "o-1"}
    assert order_call.deadline_ms == 6000
    assert (order_call.correlation_id, order_call.idempotency_key) == ("r-7:order:1", "r-7:order")

    run.reply("order", data.ORDERS["o-1"])

    assert run.pending_calls() == [
        "user",
        "store",
        "products#0",
        "products#1",
        "products#2",
        "stock",
    ]
    assert run.call("products#2").input == {"product_id": "p-3"}
    assert run.call("stock").input == {"product_ids": ["p-1", "p-2", "p-3"]}
    assert run.result is None

    run.reply("user", data.USERS["u-1"]).reply("stock", stock(run.call("stock").input))

    assert run.pending_calls() == ["store", "products#0", "products#1", "products#2"]


def test_fail_a_required_call(flow: CompiledFlow) -> None:
    run = FlowRun(flow, input={"order_id": "o-1"})
    run.reply("order", data.ORDERS["o-1"])

    run.fail("store", "http.503", "maintenance", technical=True)
    # The saga has failed, but waits for the calls still in flight before its result.
    assert run.result is None
    for call in ("user", "products#0", "products#1", "products#2", "stock"):
        run.fail(call, "http.503", technical=True)
    run.expect_no_more_calls()

    assert run.result is not None
    assert run.result["status"] == "failed"
    error = run.result["errors"][0]
    assert (error["code"], error["step"], error["adapter_code"]) == (
        "step.technical_error",
        "store",
        "http.503",
    )
    assert "maintenance" in error["message"]


def test_time_out_moves_the_clock_to_the_deadline(flow: CompiledFlow) -> None:
    run = FlowRun(flow, input={"order_id": "o-1"})
    run.reply("order", data.ORDERS["o-1"], after_ms=10)

    run.time_out("user")

    assert run.now_ms == 10 + 5000
    assert run.result is None  # waits for store, products and stock, up to their deadlines
    run.advance(0)

    assert run.result is not None
    assert run.result["status"] == "failed"
    assert run.result["errors"][0]["code"] == "step.timeout"
    assert run.result["finished_at_ms"] == 5010


def test_unknown_call_is_a_key_error(flow: CompiledFlow) -> None:
    run = FlowRun(flow, input={"order_id": "o-1"})

    with pytest.raises(KeyError, match="no call 'user' was dispatched"):
        run.reply("user", {})
