"""How a saga fails, or carries on, over the real broker: compensation in reverse
order, a sibling in flight undone once it answers, an undo that keeps failing, a
step's default, and a ``when`` that skips.

Each test runs a coordinator and a client on its own topics against a real HTTP
server on loopback that records every request (path, Idempotency-Key, time).
"""

from __future__ import annotations

import time
from http import HTTPStatus

import pytest

from contracts.events import ResultEvent
from handlers.demo.http_server import RouteResult
from orchestrator.settings import CoordinatorSettings
from tests.integration.saga_flows import (
    FLOW,
    RESULT_TIMEOUT_S,
    Hit,
    RecordingServer,
    answer_ok,
    answer_status,
    http_step,
    run_once,
    running,
    shop_registry,
    statuses,
    summary_of,
    undo,
)

pytestmark = pytest.mark.kafka


async def test_failing_third_step_compensates_the_second_then_the_first(
    settings: CoordinatorSettings,
) -> None:
    with RecordingServer({"ship": answer_status(HTTPStatus.CONFLICT, "no courier")}) as server:
        registry = shop_registry(
            server,
            {
                "reserve": http_step("reserve", compensate=undo("release", step="reserve")),
                "charge": http_step(
                    "charge", reads="reserve.id", compensate=undo("refund", step="charge")
                ),
                "ship": http_step("ship", reads="charge.id"),
            },
        )
        result = await run_once(settings, registry, {"id": "o-1"}, request_id="comp-1")

    ResultEvent.model_validate(result)
    assert (result["status"], result["complete"], result["data"]) == ("failed", False, None)
    assert [(hit.operation, hit.key) for hit in server.hits] == [
        ("reserve", "comp-1:reserve"),
        ("charge", "comp-1:charge"),
        ("ship", "comp-1:ship"),
        ("refund", "comp-1:charge:compensate"),
        ("release", "comp-1:reserve:compensate"),
    ]
    # Each undo reads the output of the call it undoes.
    assert [hit.path for hit in server.hits[3:]] == [
        "/refund/charge-reserve-o-1",
        "/release/reserve-o-1",
    ]
    assert statuses(result) == {"reserve": "compensated", "charge": "compensated", "ship": "failed"}
    assert summary_of(result, "charge")["compensated_calls"] == 1
    [error] = result["errors"]
    assert (error["code"], error["step"], error["adapter_code"]) == (
        "step.business_error",
        "ship",
        "http.409",
    )


async def test_a_sibling_in_flight_is_compensated_once_it_answers(
    settings: CoordinatorSettings,
) -> None:
    def slow(hit: Hit) -> RouteResult:
        time.sleep(1.0)
        return answer_ok(hit)

    behaviours = {"hold": slow, "check": answer_status(HTTPStatus.BAD_REQUEST, "refused")}
    with RecordingServer(behaviours) as server:
        registry = shop_registry(
            server,
            {
                "hold": http_step("hold", compensate=undo("unhold", step="hold")),
                "check": http_step("check"),
            },
        )
        result = await run_once(settings, registry, {"id": "h-1"}, request_id="drain-1")
        result_at = time.monotonic()

    assert result["status"] == "failed"
    assert statuses(result) == {"hold": "compensated", "check": "failed"}
    [undone] = server.of("unhold")
    assert (undone.path, undone.key) == ("/unhold/hold-h-1", "drain-1:hold:compensate")
    [hold_answered] = server.answered["hold"]
    [check_answered] = server.answered["check"]
    # check failed first; the saga waited for hold's answer, undid it, then answered.
    assert check_answered < hold_answered < undone.arrived < result_at
    assert [error["step"] for error in result["errors"]] == ["check"]


async def test_a_compensation_that_keeps_failing_ends_compensation_failed(
    settings: CoordinatorSettings,
) -> None:
    behaviours = {
        "charge": answer_status(HTTPStatus.CONFLICT, "card declined"),
        "release": answer_status(HTTPStatus.INTERNAL_SERVER_ERROR, "undo is broken"),
    }
    with RecordingServer(behaviours) as server:
        registry = shop_registry(
            server,
            {
                "reserve": http_step(
                    "reserve",
                    compensate=undo(
                        "release", step="reserve", retry={"attempts": 3, "backoff_ms": 5}
                    ),
                ),
                "charge": http_step("charge", reads="reserve.id"),
            },
        )
        result = await run_once(settings, registry, {"id": "o-1"}, request_id="undo-1")

    assert result["status"] == "compensation_failed"
    assert statuses(result) == {"reserve": "compensation_failed", "charge": "failed"}
    assert [hit.key for hit in server.of("release")] == ["undo-1:reserve:compensate"] * 3
    undo_error = result["errors"][-1]
    assert (undo_error["code"], undo_error["step"], undo_error["call"]) == (
        "compensation.failed",
        "reserve",
        "reserve",
    )
    assert undo_error["adapter_code"] == "http.500"
    assert "3 attempt(s)" in undo_error["message"]
    assert "POST answered 500 Internal Server Error" in undo_error["message"]
    assert "undo is broken" not in undo_error["message"]  # the downstream's body stays out


async def test_a_failing_step_with_a_default_gives_complete_false(
    settings: CoordinatorSettings,
) -> None:
    with RecordingServer({"recs": answer_status(HTTPStatus.NOT_FOUND, "no history")}) as server:
        registry = shop_registry(
            server,
            {
                "profile": http_step("profile"),
                "recs": http_step("recs", default={"id": "none"}),
                # Reads the default like any output.
                "show": http_step("show", reads="recs.id"),
            },
            result={"profile": "profile", "recs": "recs", "show": "show"},
        )
        result = await run_once(settings, registry, {"id": "u-1"}, request_id="default-1")

    assert (result["status"], result["complete"]) == ("completed", False)
    assert result["data"] == {
        "profile": {"id": "profile-u-1"},
        "recs": {"id": "none"},
        "show": {"id": "show-none"},
    }
    assert statuses(result) == {"profile": "ok", "recs": "failed", "show": "ok"}
    [error] = result["errors"]
    assert (error["code"], error["step"], error["adapter_code"]) == (
        "step.business_error",
        "recs",
        "http.404",
    )


async def test_when_false_skips_the_step(settings: CoordinatorSettings) -> None:
    with RecordingServer() as server:
        registry = shop_registry(
            server,
            {"base": http_step("base"), "gift": http_step("gift", when="input.gift")},
            result={"base": "base", "gift": "gift"},
        )
        async with running(settings, registry) as (_, client):
            skipped = await client.run(
                FLOW, {"id": "s-1"}, request_id="when-1", timeout_s=RESULT_TIMEOUT_S
            )
            wanted = await client.run(
                FLOW, {"id": "s-2", "gift": True}, request_id="when-2", timeout_s=RESULT_TIMEOUT_S
            )

    assert (skipped["status"], skipped["complete"]) == ("completed", True)
    assert skipped["data"] == {"base": {"id": "base-s-1"}, "gift": None}
    assert statuses(skipped) == {"base": "ok", "gift": "skipped"}
    assert (summary_of(skipped, "gift")["calls"], summary_of(skipped, "gift")["attempts"]) == (0, 0)
    # The same flow with the condition true does call it.
    assert wanted["data"] == {"base": {"id": "base-s-2"}, "gift": {"id": "gift-s-2"}}
    assert [hit.path for hit in server.of("gift")] == ["/gift/s-2"]
