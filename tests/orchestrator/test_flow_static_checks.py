"""Static checks of the saga settings: errors listed at once, and warnings."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from contracts.flow import FlowDefinition
from orchestrator.catalog import catalog_from_data
from orchestrator.errors import FlowLoadError
from orchestrator.flow import CompiledFlow, compile_flow

CATALOG = catalog_from_data(
    {
        "services": {
            "svc": {"kind": "kafka", "operations": ["get", "put", "undo"]},
            "open": {"kind": "kafka"},
        }
    },
    source="test catalog",
)


def compile_steps(steps: dict[str, Any], result: Any = "a", **flow: Any) -> CompiledFlow:
    definition = FlowDefinition.model_validate(
        {"name": "f", "steps": steps, "result": result, **flow}
    )
    return compile_flow(definition, catalog=CATALOG, source="f.yaml")


def get(**fields: Any) -> dict[str, Any]:
    return {"service": "svc", "operation": "get", "input": {"id": "input.id"}, **fields}


@pytest.mark.parametrize(
    ("step", "problem"),
    [
        (
            get(compensate={"operation": "refund"}),
            "step 'a' compensate: service 'svc' has no operation 'refund' (it has: get, put, undo)",
        ),
        (
            get(compensate={"service": "nowhere", "operation": "undo"}),
            "step 'a' compensate: unknown service 'nowhere'",
        ),
        (
            get(compensate={"operation": "undo", "input": {"x": "item.id"}}),
            "step 'a' compensate input: 'item' is not available here",
        ),
        (get(concurrency=4), "concurrency caps the calls of a for_each step"),
        (get(optional=True, default=[]), "optional: true means default: null"),
        (
            get(retry={"backoff_ms": 500, "max_backoff_ms": 100}),
            "max_backoff_ms (100) is below backoff_ms (500)",
        ),
        (get(when="input.["), "step 'a' when: 'input.[' is not a valid JMESPath expression"),
        (get(when="item.flag"), "step 'a' when: 'item' is not available here"),
    ],
)
def test_saga_settings_are_checked_at_load(step: dict[str, Any], problem: str) -> None:
    with pytest.raises(FlowLoadError) as caught:
        compile_steps({"a": step})

    assert problem in str(caught.value)
    assert str(caught.value).startswith("f.yaml: flow 'f' is invalid")


@pytest.mark.parametrize(
    "retry",
    [{"attempts": 0}, {"attempts": 101}, {"multiplier": 0.5}, {"backoff_ms": -1}],
)
def test_retry_settings_out_of_range_are_rejected(retry: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        FlowDefinition.model_validate(
            {"name": "f", "steps": {"a": get(retry=retry)}, "result": "a"}
        )


def test_a_cycle_is_reported_with_the_other_problems_of_the_file() -> None:
    with pytest.raises(FlowLoadError) as caught:
        compile_steps(
            {
                "a": get(input={"id": "b.id"}),
                "b": get(input={"id": "a.id"}),
                "c": {"service": "svc", "operation": "nope"},
            }
        )

    message = str(caught.value)
    assert "cycle: a -> b -> a" in message
    assert "service 'svc' has no operation 'nope'" in message


def test_a_step_nobody_reads_is_a_warning_unless_it_declares_a_side_effect() -> None:
    flow = compile_steps(
        {
            "a": get(),
            "unread": get(),
            "undoable": get(compensate={"operation": "undo", "input": {"id": "undoable.id"}}),
            "first": get(),
            "second": get(after=["first"]),
        }
    )

    assert flow.warnings == (
        "step 'unread': nobody reads its output (no step, compensation or the result); "
        "read it, remove the step, or declare its side effect with `compensate` or `after`",
    )


def test_reading_a_step_that_can_be_null_without_a_fallback_is_a_warning() -> None:
    flow = compile_steps(
        {
            "a": get(when="input.wanted"),
            "plain": get(input={"id": "a.id"}),
            "guarded": get(input={"id": "a.id"}, when="a"),
            "fallback": get(input={"id": "a.id"}, default=None),
        },
        result={"p": "plain", "g": "guarded", "f": "fallback"},
    )

    assert flow.warnings == (
        "step 'plain' reads 'a', which can be null (its `when` can skip it), and has no "
        "fallback; give 'plain' a `when` that checks it or a `default`",
    )


def test_compiled_saga_settings() -> None:
    flow = compile_steps(
        {
            "a": get(
                retry={"attempts": 4},
                compensate={"operation": "undo", "input": {"id": "a.id"}, "timeout_ms": 900},
            ),
            "b": get(input={"id": "a.id"}, default=[], for_each="input.ids", concurrency=3),
        },
        result={"a": "a", "b": "b"},
        defaults={"timeout_ms": 1500, "retry": {"attempts": 2, "backoff_ms": 20}},
        version=5,
        deadline_ms=9000,
    )
    a, b = flow.step("a"), flow.step("b")

    assert (flow.version, flow.deadline_ms) == (5, 9000)
    assert (a.retry.attempts, a.retry.backoff_ms) == (4, 20)
    assert a.compensation is not None
    # Compensations keep 5 attempts; the defaults lend them their backoff only.
    assert (a.compensation.retry.attempts, a.compensation.retry.backoff_ms) == (5, 20)
    assert (a.compensation.service, a.compensation.timeout_ms) == ("svc", 900)
    assert not a.shares_calls
    assert (b.retry.attempts, b.optional, b.default, b.concurrency) == (2, True, [], 3)
    assert b.shares_calls
