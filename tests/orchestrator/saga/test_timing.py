"""The result's time axis: when each step, call and undo ran, taken from the events'
own times (no clock), and bounded for wide fan-outs."""

from __future__ import annotations

from typing import Any

from contracts.events import MAX_TIMED_CALLS, MAX_TIMED_CALLS_PER_STEP, ResultEvent
from contracts.flow import FlowDefinition
from orchestrator.catalog import catalog_from_data
from orchestrator.flow import CompiledFlow, compile_flow
from orchestrator.saga import CallReplied, PublishResult, SagaEvent, decide, start_saga
from orchestrator.saga.replay import replay
from orchestrator.testing import FlowRun

CATALOG = catalog_from_data({"services": {"svc": {"kind": "kafka"}}}, source="test catalog")


def flow_of(steps: dict[str, Any]) -> CompiledFlow:
    definition = FlowDefinition.model_validate({"name": "t", "steps": steps, "result": "`null`"})
    return compile_flow(definition, catalog=CATALOG, source="test flow")


def step(operation: str, **fields: Any) -> dict[str, Any]:
    return {"service": "svc", "operation": operation, "input": {"id": "input.id"}, **fields}


def summary(result: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [s for s in result["steps"] if s["step"] == name]
    return found


def test_calls_and_their_undo_are_timed_from_the_saga_start() -> None:
    flow = flow_of(
        {
            "a": step(
                "a",
                retry={"attempts": 2, "backoff_ms": 10},
                compensate={"operation": "undo_a", "input": {"ref": "a.ref"}},
            ),
            "b": step("b", input={"ref": "a.ref"}),
        }
    )
    run = FlowRun(flow, input={"id": "x"}, now_ms=1_000)
    run.fail("a", "http.503", "busy", technical=True, after_ms=5)  # at 1005, retry at 1015
    run.advance(10).reply("a", {"ref": "A"}, after_ms=20)  # answered at 1035
    run.fail("b", "http.409", "no", after_ms=15)  # b fails at 1050: undo a
    run.reply("a~undo", after_ms=7)  # undone at 1057

    result = run.result
    assert result is not None
    ResultEvent.model_validate(result)
    a, b = summary(result, "a"), summary(result, "b")
    assert (a["started_ms"], a["finished_ms"], b["started_ms"], b["finished_ms"]) == (0, 35, 35, 50)
    [call_a] = a["call_timeline"]
    assert call_a == {
        "call": "a",
        "started_ms": 0,
        "finished_ms": 35,
        "attempts": 2,
        "outcome": "ok",
        "error_code": None,
        "compensation": {
            "started_ms": 50,
            "finished_ms": 57,
            "attempts": 1,
            "outcome": "ok",
            "error_code": None,
        },
    }
    [call_b] = b["call_timeline"]
    assert (call_b["outcome"], call_b["error_code"], call_b["compensation"]) == (
        "failed",
        "step.business_error",
        None,
    )


def test_a_timed_out_call_and_a_failed_undo_say_so() -> None:
    flow = flow_of(
        {
            "a": step("a", compensate={"operation": "undo_a", "input": {"ref": "a.ref"}}),
            "b": step("b", input={"ref": "a.ref"}, timeout_ms=100),
        }
    )
    run = FlowRun(flow, input={"id": "x"})
    run.reply("a", {"ref": "A"}).time_out("b")
    run.fail("a~undo", "http.500", "down")

    result = run.result
    assert result is not None
    assert result["status"] == "compensation_failed"
    [call_b] = summary(result, "b")["call_timeline"]
    assert (call_b["outcome"], call_b["error_code"], call_b["finished_ms"]) == (
        "timed_out",
        "step.timeout",
        101,
    )
    undo = summary(result, "a")["call_timeline"][0]["compensation"]
    assert (undo["outcome"], undo["error_code"]) == ("failed", "compensation.failed")


def test_calls_held_back_behind_the_concurrency_never_began() -> None:
    flow = flow_of({"a": step("a", for_each="input.items", input={"id": "item"}, concurrency=1)})
    run = FlowRun(flow, input={"items": [1, 2, 3]})
    run.fail("a#0", "http.409", "no", after_ms=4)

    result = run.result
    assert result is not None
    timeline = summary(result, "a")["call_timeline"]
    assert [(c["call"], c["outcome"], c["started_ms"], c["finished_ms"]) for c in timeline] == [
        ("a#0", "failed", 0, 4),
        ("a#1", "not_run", None, None),
        ("a#2", "not_run", None, None),
    ]


def test_a_wide_fan_out_keeps_the_result_bounded() -> None:
    width = MAX_TIMED_CALLS_PER_STEP * 3
    steps = {
        f"s{i}": step(f"op{i}", for_each="input.items", input={"id": "item"}) for i in range(12)
    }
    run = FlowRun(flow_of(steps), input={"items": list(range(width))})
    for call in run.pending_calls():
        run.reply(call, after_ms=0)

    result = run.result
    assert result is not None
    ResultEvent.model_validate(result)
    timed = [len(s["call_timeline"]) for s in result["steps"]]
    assert all(s["calls"] == width for s in result["steps"])
    assert max(timed) == MAX_TIMED_CALLS_PER_STEP
    assert sum(timed) == MAX_TIMED_CALLS
    assert run.state.steps["s0"].times is not None
    assert len(run.state.steps["s0"].times) == 2 * MAX_TIMED_CALLS_PER_STEP


def test_a_replayed_saga_has_the_same_times() -> None:
    flow = flow_of(
        {
            "a": step("a", compensate={"operation": "undo_a", "input": {"ref": "a.ref"}}),
            "b": step("b", input={"ref": "a.ref"}),
        }
    )
    events: list[SagaEvent] = [
        CallReplied(call="a", attempt=1, status="ok", at_ms=110, output={"ref": "A"}),
        CallReplied(call="b", attempt=1, status="business_error", at_ms=130, error_code="x"),
        CallReplied(call="a~undo", attempt=1, status="ok", at_ms=145),
    ]
    state, _ = start_saga(flow, request_id="r", input={"id": "x"}, now_ms=100)
    results = [
        action.result
        for event in events
        for action in decide(flow, state, event)[1]
        if isinstance(action, PublishResult)
    ]

    replayed = replay(flow, request_id="r", input={"id": "x"}, started_ms=100, events=events)

    assert replayed.result == results[0]
    [call_a] = summary(results[0], "a")["call_timeline"]
    assert (call_a["finished_ms"], call_a["compensation"]["finished_ms"]) == (10, 45)


def test_a_call_withdrawn_before_it_was_sent_never_began() -> None:
    # b and c start together once a answers; c's for_each fails at once, so b's
    # dispatch, decided in the same decision, is withdrawn before it leaves.
    flow = flow_of(
        {
            "a": step("a"),
            "b": step("b", input={"ref": "a.ref"}),
            "c": step("c", for_each="a.ref", input={"id": "item"}),
        }
    )
    run = FlowRun(flow, input={"id": "x"})
    run.reply("a", {"ref": "A"}, after_ms=5)

    result = run.result
    assert result is not None
    assert run.pending_calls() == []
    ResultEvent.model_validate(result)
    [call_b] = summary(result, "b")["call_timeline"]
    assert (call_b["outcome"], call_b["attempts"], call_b["started_ms"], call_b["finished_ms"]) == (
        "cancelled",
        0,
        None,
        5,
    )
    replayed = replay(
        flow,
        request_id=run.state.request_id,
        input={"id": "x"},
        started_ms=run.state.started_ms,
        events=[CallReplied(call="a", attempt=1, status="ok", at_ms=5, output={"ref": "A"})],
    )
    assert replayed.result == result
