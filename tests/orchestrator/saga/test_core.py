"""The pure saga core, driven by tables of events: no broker, no clock, no I/O."""

from __future__ import annotations

from typing import Any

import pytest

from contracts.events import ResultEvent
from orchestrator.builder import FlowBuilder
from orchestrator.catalog import catalog_from_data
from orchestrator.flow import CompiledFlow, compile_flow
from orchestrator.saga import (
    CallReplied,
    CallTimedOut,
    DispatchCall,
    EventIgnored,
    PublishResult,
    decide,
    start_saga,
)
from orchestrator.testing import FlowRun

CATALOG = catalog_from_data(
    {
        "services": {
            "svc": {"kind": "kafka", "operations": []},
        }
    },
    source="test catalog",
)


def compile_(builder: FlowBuilder) -> CompiledFlow:
    return compile_flow(builder.build(), catalog=CATALOG, source="test flow")


def chain_flow(*, optional: bool = False) -> CompiledFlow:
    """a -> (b, fan-out c over a.items) -> result."""
    builder = FlowBuilder("chain", timeout_ms=1000)
    builder.step("a", service="svc", operation="get", input={"id": "input.id"})
    builder.step("b", service="svc", operation="get", input={"id": "a.b_id"})
    builder.step(
        "c",
        service="svc",
        operation="get",
        for_each="a.items",
        input={"id": "item"},
        output={"id": "reply.id", "position": "index"},
        optional=optional,
    )
    return compile_(builder.result({"b": "b", "c": "c"}))


def test_start_dispatches_only_steps_without_dependencies() -> None:
    run = FlowRun(chain_flow(), input={"id": "x"}, request_id="r")

    assert run.pending_calls() == ["a"]
    call = run.call("a")
    assert (call.input, call.correlation_id, call.idempotency_key) == ({"id": "x"}, "r:a:1", "r:a")
    assert call.deadline_ms == 1000


def test_dependents_start_together_with_one_call_per_item() -> None:
    run = FlowRun(chain_flow(), input={"id": "x"})
    run.reply("a", {"b_id": "B", "items": ["i0", "i1"]})

    assert run.pending_calls() == ["b", "c#0", "c#1"]
    assert [run.call(call).input for call in ("c#0", "c#1")] == [{"id": "i0"}, {"id": "i1"}]
    assert run.result is None


def test_result_composes_outputs_in_item_order() -> None:
    run = FlowRun(chain_flow(), input={"id": "x"})
    run.reply("a", {"b_id": "B", "items": ["i0", "i1"]})
    run.reply("c#1", {"id": "second"}).reply("b", {"name": "bee"}).reply("c#0", {"id": "first"})

    result = run.result
    assert result is not None
    ResultEvent.model_validate(result)
    assert result["status"] == "completed"
    assert result["data"] == {
        "b": {"name": "bee"},
        "c": [{"id": "first", "position": 0}, {"id": "second", "position": 1}],
    }
    assert [(s["step"], s["status"], s["calls"]) for s in result["steps"]] == [
        ("a", "ok", 1),
        ("b", "ok", 1),
        ("c", "ok", 2),
    ]


def test_failed_required_call_fails_the_saga_once() -> None:
    run = FlowRun(chain_flow(), input={"id": "x"})
    run.reply("a", {"b_id": "B", "items": ["i0"]})
    run.fail("c#0", "http.404", "nope")
    run.reply("b", {"name": "late"})  # after the end: ignored

    assert len(run.results) == 1
    result = run.results[0]
    assert result["status"] == "failed"
    assert result["data"] is None
    assert result["errors"] == [
        {
            "code": "step.business_error",
            "message": "svc.get failed: nope",
            "step": "c",
            "call": "c#0",
            "adapter_code": "http.404",
        }
    ]


def test_failed_optional_call_yields_null_and_is_reported() -> None:
    run = FlowRun(chain_flow(optional=True), input={"id": "x"})
    run.reply("a", {"b_id": "B", "items": ["i0", "i1"]})
    run.fail("c#0", "http.500", "boom", technical=True).reply("c#1", {"id": "ok"}).reply("b", 1)

    result = run.result
    assert result is not None
    assert result["status"] == "completed"
    assert result["data"]["c"] == [None, {"id": "ok", "position": 1}]
    assert [error["code"] for error in result["errors"]] == ["step.technical_error"]
    assert {s["step"]: s["status"] for s in result["steps"]}["c"] == "partial"


def test_timeout_fails_with_step_timeout_and_a_late_reply_is_ignored() -> None:
    run = FlowRun(chain_flow(), input={"id": "x"})
    run.time_out("a")
    run.reply("a", {"b_id": "B", "items": []})

    assert len(run.results) == 1
    [error] = run.results[0]["errors"]
    assert error["code"] == "step.timeout"
    assert error["message"] == "no reply from svc.get within 1000 ms"


@pytest.mark.parametrize(
    "event",
    [
        CallReplied(call="a", attempt=1, status="ok", at_ms=5, output={"b_id": "B", "items": []}),
        CallTimedOut(call="a", attempt=1, at_ms=1000),
    ],
)
def test_second_answer_for_a_call_changes_nothing(event: Any) -> None:
    flow = chain_flow()
    state, _ = start_saga(flow, request_id="r", input={"id": "x"}, now_ms=0)
    first = CallReplied(
        call="a", attempt=1, status="ok", at_ms=1, output={"b_id": "B", "items": []}
    )
    state, actions = decide(flow, state, first)
    assert [action.call for action in actions if isinstance(action, DispatchCall)] == ["b"]

    state, actions = decide(flow, state, event)

    # Nothing is dispatched or published; a late reply is reported as ignored.
    assert all(isinstance(action, EventIgnored) for action in actions)
    assert len(actions) == (1 if isinstance(event, CallReplied) else 0)
    assert state.outputs["a"] == {"b_id": "B", "items": []}


@pytest.mark.parametrize(
    "event",
    [
        CallReplied(call="a", attempt=2, status="ok", at_ms=1),  # an attempt never made
        CallReplied(call="zzz", attempt=1, status="ok", at_ms=1),  # no such step
        CallReplied(call="b", attempt=1, status="ok", at_ms=1),  # step not started
        CallReplied(call="c#7", attempt=1, status="ok", at_ms=1),  # no such item
    ],
)
def test_answers_that_match_no_call_are_ignored(event: CallReplied) -> None:
    flow = chain_flow()
    state, _ = start_saga(flow, request_id="r", input={"id": "x"}, now_ms=0)

    state, actions = decide(flow, state, event)

    assert actions == [
        EventIgnored(
            reason=actions[0].reason,  # type: ignore[union-attr]
            call=event.call,
            attempt=event.attempt,
            late_reply=True,
        )
    ]
    assert state.steps["a"].status == "running"


def test_for_each_over_empty_list_completes_without_calls() -> None:
    run = FlowRun(chain_flow(), input={"id": "x"})
    run.reply("a", {"b_id": "B", "items": []}).reply("b", "bee")

    assert run.result is not None
    assert run.result["data"] == {"b": "bee", "c": []}
    assert {s["step"]: s["calls"] for s in run.result["steps"]}["c"] == 0


def test_for_each_over_a_non_list_fails_with_input_error() -> None:
    run = FlowRun(chain_flow(), input={"id": "x"})
    run.reply("a", {"b_id": "B", "items": "not a list"})

    assert run.result is not None
    [error] = run.result["errors"]
    assert (error["code"], error["step"]) == ("step.input_error", "c")
    assert "not a list" in error["message"]


def test_result_mapping_error_fails_the_saga() -> None:
    builder = FlowBuilder("bad-result")
    builder.step("a", service="svc", operation="get", input={"id": "input.id"})
    flow = compile_(builder.result({"n": "multiply(a.name, `2`)"}))
    run = FlowRun(flow, input={"id": "x"}).reply("a", {"name": "text"})

    assert run.result is not None
    assert run.result["status"] == "failed"
    assert [error["code"] for error in run.result["errors"]] == ["result.mapping_error"]


def test_output_mapping_error_fails_the_call() -> None:
    builder = FlowBuilder("bad-output")
    builder.step(
        "a", service="svc", operation="get", input={"id": "input.id"}, output="multiply(reply, `2`)"
    )
    flow = compile_(builder.result("a"))
    run = FlowRun(flow, input={"id": "x"}).reply("a", "text")

    assert run.result is not None
    assert [error["code"] for error in run.result["errors"]] == ["step.output_error"]


def test_explicit_after_orders_steps_that_read_nothing_from_each_other() -> None:
    builder = FlowBuilder("ordered")
    first = builder.step("first", service="svc", operation="put", input={"id": "input.id"})
    builder.step("second", service="svc", operation="put", input={"id": "input.id"}, after=[first])
    run = FlowRun(compile_(builder.result("second")), input={"id": "x"})

    assert run.pending_calls() == ["first"]
    run.reply("first", None)
    assert run.pending_calls() == ["second"]


def test_a_saga_publishes_exactly_one_result_action() -> None:
    flow = chain_flow()
    state, actions = start_saga(flow, request_id="r", input={"id": "x"}, now_ms=0)
    events = [
        CallReplied(
            call="a", attempt=1, status="ok", at_ms=1, output={"b_id": "B", "items": ["i"]}
        ),
        CallReplied(call="b", attempt=1, status="ok", at_ms=2, output=1),
        CallReplied(call="c#0", attempt=1, status="ok", at_ms=3, output={"id": 1}),
        CallTimedOut(call="b", attempt=1, at_ms=1000),
        CallReplied(call="c#0", attempt=1, status="ok", at_ms=4, output={"id": 1}),
    ]
    published = []
    for event in events:
        state, actions = decide(flow, state, event)
        published += [action for action in actions if isinstance(action, PublishResult)]

    assert len(published) == 1
    assert state.status == "completed"
    assert published[0].result["finished_at_ms"] == 3
