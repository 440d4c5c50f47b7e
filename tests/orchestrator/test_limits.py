"""Limits: the input's shape is checked without recursion, and the core reads its
limits from the context (for_each length, mapping work, result size)."""

from __future__ import annotations

import contextvars
from typing import Any

import pytest

from contracts.events import ResultEvent
from contracts.flow import FlowDefinition
from orchestrator.catalog import catalog_from_data
from orchestrator.expressions import MappingBudgetError, compile_expression
from orchestrator.flow import CompiledFlow, compile_flow
from orchestrator.limits import LIMITS, Limits, ShapeError, check_shape, current_limits
from orchestrator.testing import FlowRun

CATALOG = catalog_from_data({"services": {"svc": {"kind": "kafka"}}}, source="test catalog")


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": [value]}
    return value


def under(limits: Limits, work: Any) -> Any:
    """Run ``work()`` in a context whose limits are ``limits``."""
    context = contextvars.copy_context()
    context.run(LIMITS.set, limits)
    return context.run(work)


def flow_of(steps: dict[str, Any], result: Any = "`null`") -> CompiledFlow:
    definition = FlowDefinition.model_validate({"name": "test", "steps": steps, "result": result})
    return compile_flow(definition, catalog=CATALOG, source="test flow")


def test_a_value_nested_100000_levels_is_refused_without_recursion() -> None:
    with pytest.raises(ShapeError) as refused:
        check_shape(nested(100_000), max_depth=32, max_array_length=10)

    assert refused.value.code == "input.too_deep"


def test_depth_counts_objects_and_arrays() -> None:
    check_shape(nested(16), max_depth=32, max_array_length=10)  # 32 levels: allowed
    with pytest.raises(ShapeError):
        check_shape(nested(17), max_depth=32, max_array_length=10)


def test_a_long_array_anywhere_is_refused_with_its_place() -> None:
    with pytest.raises(ShapeError) as refused:
        check_shape({"a": {"b": list(range(11))}}, max_depth=32, max_array_length=10)

    assert refused.value.code == "input.too_long"
    assert "input/a/b" in str(refused.value)


def test_the_default_limits_apply_outside_a_coordinator() -> None:
    assert current_limits() == Limits()
    assert under(Limits(max_for_each=3), current_limits).max_for_each == 3


def test_a_projection_over_a_million_items_runs_out_of_budget() -> None:
    expression = compile_expression("reply.items[*].id")
    reply = {"items": [{"id": n} for n in range(1_000_000)]}

    with pytest.raises(MappingBudgetError) as failed:
        expression.evaluate({"reply": reply})

    assert failed.value.code == "step.mapping_budget"
    allowed = under(
        Limits(max_mapping_work=2_000_000), lambda: expression.evaluate({"reply": reply})
    )
    assert len(allowed) == 1_000_000


@pytest.mark.parametrize(
    "source", ["sort(reply.ids)", "reply.nested[]", "where_in(reply.items, 'id', reply.ids)"]
)
def test_functions_and_flatten_are_charged_the_size_of_their_input(source: str) -> None:
    big = list(range(1_000))
    context = {"reply": {"ids": big, "nested": [[n] for n in big], "items": []}}
    expression = compile_expression(source)

    assert expression.evaluate(context) is not None
    with pytest.raises(MappingBudgetError):
        under(Limits(max_mapping_work=500), lambda: expression.evaluate(context))


def test_length_and_plain_paths_cost_nothing_per_item() -> None:
    context = {"reply": {"ids": list(range(1_000))}}

    for source in ("length(reply.ids)", "reply.ids"):
        value = under(
            Limits(max_mapping_work=10), lambda s=source: compile_expression(s).evaluate(context)
        )
        assert value is not None


def failed_codes(run: FlowRun) -> list[str]:
    assert run.result is not None
    ResultEvent.model_validate(run.result)
    assert run.result["status"] == "failed"
    return [error["code"] for error in run.result["errors"]]


def test_an_exploding_output_mapping_fails_the_saga_with_mapping_budget() -> None:
    flow = flow_of(
        {"a": {"service": "svc", "operation": "a", "input": {}, "output": "reply[*].id"}}
    )

    def run() -> FlowRun:
        return FlowRun(flow, input={}).reply("a", [{"id": n} for n in range(1_000)])

    assert failed_codes(under(Limits(max_mapping_work=100), run)) == ["step.mapping_budget"]


def test_a_for_each_over_its_limit_fails_before_any_call() -> None:
    flow = flow_of(
        {
            "a": {
                "service": "svc",
                "operation": "a",
                "for_each": "input.ids",
                "input": {"id": "item"},
            }
        }
    )

    run = under(Limits(max_for_each=5), lambda: FlowRun(flow, input={"ids": list(range(6))}))

    assert run.dispatched == []
    assert failed_codes(run) == ["step.for_each_too_long"]
    assert under(Limits(max_for_each=5), lambda: FlowRun(flow, input={"ids": [1]})).dispatched


def test_a_result_over_its_size_fails_the_saga_with_its_own_code() -> None:
    flow = flow_of({"a": {"service": "svc", "operation": "a", "input": {}}}, result="a")

    def run() -> FlowRun:
        return FlowRun(flow, input={}).reply("a", "x" * 2_000)

    assert failed_codes(under(Limits(max_result_bytes=1_000), run)) == ["result.too_large"]
    completed = run().result
    assert completed is not None
    assert completed["status"] == "completed"
