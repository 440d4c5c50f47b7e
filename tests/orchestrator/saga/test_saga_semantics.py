"""The saga semantics through the given/expect harness: retries, compensation order,
draining, conditions, fan-out caps and shared calls. No broker, no clock."""

from __future__ import annotations

from typing import Any

from contracts.events import ResultEvent
from contracts.flow import FlowDefinition
from orchestrator.catalog import catalog_from_data
from orchestrator.flow import CompiledFlow, compile_flow
from orchestrator.testing import FlowRun

CATALOG = catalog_from_data({"services": {"svc": {"kind": "kafka"}}}, source="test catalog")


def flow_of(steps: dict[str, Any], result: Any = "`null`", **fields: Any) -> CompiledFlow:
    definition = FlowDefinition.model_validate(
        {"name": "test", "steps": steps, "result": result, **fields}
    )
    return compile_flow(definition, catalog=CATALOG, source="test flow")


def step(operation: str, **fields: Any) -> dict[str, Any]:
    return {"service": "svc", "operation": operation, "input": {"id": "input.id"}, **fields}


def undoable(operation: str, **fields: Any) -> dict[str, Any]:
    return step(
        operation,
        compensate={"operation": f"undo_{operation}", "input": {"ref": f"{operation}.ref"}},
        **fields,
    )


def statuses(run: FlowRun) -> dict[str, str]:
    assert run.result is not None
    ResultEvent.model_validate(run.result)
    return {summary["step"]: summary["status"] for summary in run.result["steps"]}


def test_three_step_chain_failing_at_the_third_undoes_second_then_first() -> None:
    flow = flow_of(
        {
            "a": undoable("a"),
            "b": undoable("b", input={"ref": "a.ref"}),
            "c": step("c", input={"ref": "b.ref"}),
        }
    )
    run = FlowRun(flow, input={"id": "x"}, request_id="r")
    run.reply("a", {"ref": "A"}).reply("b", {"ref": "B"})
    run.fail("c", "http.402", "refused")

    run.expect_compensations("b")
    assert run.call("b~undo").input == {"ref": "B"}
    assert run.call("b~undo").idempotency_key == "r:b:compensate"
    run.reply("b~undo")
    run.expect_compensations("a")
    run.reply("a~undo").expect_no_more_calls()

    assert run.compensations() == ["b", "a"]
    assert run.result is not None
    assert run.result["status"] == "failed"
    assert statuses(run) == {"a": "compensated", "b": "compensated", "c": "failed"}


def test_technical_errors_are_retried_with_backoff_and_the_same_key() -> None:
    flow = flow_of(
        {"a": step("a", retry={"attempts": 3, "backoff_ms": 100, "max_backoff_ms": 150})},
        result="a",
    )
    run = FlowRun(flow, input={"id": "x"}, request_id="r")
    run.fail("a", "http.503", technical=True)
    assert run.pending_calls() == []

    run.advance(100)  # the first wait is at most backoff_ms
    assert run.call("a").attempt == 2
    run.time_out("a")
    run.advance(150)  # capped by max_backoff_ms
    run.reply("a", {"ok": True})

    assert [call.correlation_id for call in run.dispatched] == ["r:a:1", "r:a:2", "r:a:3"]
    assert {call.idempotency_key for call in run.dispatched} == {"r:a"}
    assert run.result is not None
    assert run.result["status"] == "completed"
    assert run.result["steps"][0]["attempts"] == 3


def test_retry_after_is_the_lower_bound_of_the_wait() -> None:
    flow = flow_of({"a": step("a", retry={"attempts": 2, "backoff_ms": 10})}, result="a")
    run = FlowRun(flow, input={"id": "x"})
    run.fail("a", "http.429", technical=True, retry_after_ms=5_000)

    run.advance(4_990)
    assert run.attempts("a") == 1
    run.advance(20)
    assert run.attempts("a") == 2


def test_business_errors_are_final_at_once() -> None:
    flow = flow_of({"a": step("a", retry={"attempts": 5})}, result="a")
    run = FlowRun(flow, input={"id": "x"})
    run.fail("a", "http.404", "gone")
    run.advance(60_000)

    assert run.attempts("a") == 1
    assert run.result is not None
    assert run.result["status"] == "failed"


def test_a_sibling_in_flight_is_awaited_and_undone_when_it_succeeds_late() -> None:
    flow = flow_of({"slow": undoable("slow"), "bad": step("bad")})
    run = FlowRun(flow, input={"id": "x"})
    run.fail("bad", "http.400", "no")

    assert run.result is None  # the sibling is still in flight
    run.reply("slow", {"ref": "S"}, after_ms=500)
    run.expect_compensations("slow").reply("slow~undo").expect_no_more_calls()

    assert statuses(run) == {"slow": "compensated", "bad": "failed"}


def test_a_compensation_that_keeps_failing_ends_compensation_failed() -> None:
    flow = flow_of(
        {"a": undoable("a"), "b": step("b", input={"ref": "a.ref"})},
        defaults={"retry": {"backoff_ms": 0}},
    )
    run = FlowRun(flow, input={"id": "x"})
    run.reply("a", {"ref": "A"}).fail("b", "http.409", "conflict")
    for _ in range(5):  # compensations default to 5 attempts
        run.fail("a~undo", "http.500", "down", technical=True)
        run.advance(0)
    run.expect_no_more_calls()

    assert run.attempts("a~undo") == 5
    assert run.result is not None
    assert run.result["status"] == "compensation_failed"
    assert statuses(run)["a"] == "compensation_failed"
    undo_error = run.result["errors"][-1]
    assert (undo_error["code"], undo_error["step"], undo_error["call"]) == (
        "compensation.failed",
        "a",
        "a",
    )


def test_when_false_skips_and_default_keeps_the_saga_going() -> None:
    flow = flow_of(
        {
            "maybe": step("maybe", when="input.wanted"),
            "extra": step("extra", default=[]),
        },
        result={"maybe": "maybe", "extra": "extra"},
    )
    run = FlowRun(flow, input={"id": "x", "wanted": False})
    run.expect_calls("extra")
    run.fail("extra", "http.500", technical=True)

    assert run.result is not None
    assert run.result["status"] == "completed"
    assert run.result["complete"] is False
    assert run.result["data"] == {"maybe": None, "extra": []}
    assert statuses(run) == {"maybe": "skipped", "extra": "failed"}


def test_concurrency_caps_calls_in_flight() -> None:
    flow = flow_of(
        {"lines": step("get", for_each="input.items", input={"id": "item"}, concurrency=2)},
        result="lines",
    )
    run = FlowRun(flow, input={"id": "x", "items": [1, 2, 3, 4, 5]})
    most = 0
    while run.result is None:
        most = max(most, len(run.pending_calls()))
        run.reply(run.pending_calls()[0], "ok")

    assert most == 2
    assert run.result["data"] == ["ok"] * 5


def test_identical_calls_are_made_once_and_shared() -> None:
    flow = flow_of(
        {
            "lines": step("get", for_each="input.items", input={"id": "item"}),
            "again": step("get", input={"id": "`1`"}, after=[]),
        },
        result={"lines": "lines", "again": "again"},
    )
    run = FlowRun(flow, input={"id": "x", "items": [1, 2, 1, 1]})
    run.expect_calls("lines#0", "lines#1")  # `again` and lines#2/#3 wait on lines#0
    run.reply("lines#0", "one").reply("lines#1", "two")

    assert run.result is not None
    assert run.result["data"] == {"lines": ["one", "two", "one", "one"], "again": "one"}


def test_a_large_for_each_of_identical_items_completes() -> None:
    flow = flow_of({"lines": step("get", for_each="input.items", input={"id": "item"})})
    run = FlowRun(flow, input={"id": "x", "items": ["same"] * 10_000})
    run.reply("lines#0", "answer")

    assert run.result is not None
    assert len(run.dispatched) == 1
    assert run.result["steps"][0]["calls"] == 10_000


def test_a_reply_after_the_result_is_ignored_and_reported() -> None:
    flow = flow_of({"a": step("a")}, result="a")
    run = FlowRun(flow, input={"id": "x"}).reply("a", 1)
    run.reply("a", 2)

    assert len(run.results) == 1
    assert [(event.reason, event.call) for event in run.ignored] == [("finished_saga", "a")]


def test_the_flow_deadline_fails_and_compensates() -> None:
    flow = flow_of(
        {"a": undoable("a"), "b": step("b", input={"ref": "a.ref"}, timeout_ms=60_000)},
        deadline_ms=1_000,
        version=7,
    )
    run = FlowRun(flow, input={"id": "x"})
    run.reply("a", {"ref": "A"})
    run.advance(1_000)
    assert run.result is None  # b is still in flight: awaited up to its own deadline
    run.reply("b", {})
    run.expect_compensations("a").reply("a~undo")

    assert run.result is not None
    assert run.result["flow_version"] == 7
    assert run.result["errors"][0]["code"] == "step.deadline"
    assert statuses(run) == {"a": "compensated", "b": "ok"}


def test_a_large_compensable_fan_out_undoes_each_successful_call() -> None:
    flow = flow_of(
        {
            "hold": {
                **step("hold", for_each="input.items", input={"id": "item"}),
                "compensate": {"operation": "release", "input": {"id": "hold.ref", "n": "index"}},
            }
        }
    )
    count = 5_000
    run = FlowRun(flow, input={"id": "x", "items": list(range(count))})
    for index in range(count - 1):
        run.reply(f"hold#{index}", {"ref": f"h-{index}"})
    run.fail(f"hold#{count - 1}", "http.409", "no room")

    undo_calls = [call for call in run.dispatched if call.call.endswith("~undo")]
    assert len(undo_calls) == count - 1
    assert undo_calls[7].input == {"id": "h-7", "n": 7}
    for call in undo_calls:
        run.reply(call.call)

    assert run.result is not None
    summary = run.result["steps"][0]
    assert (summary["status"], summary["compensated_calls"]) == ("failed", count - 1)
