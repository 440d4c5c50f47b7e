"""Result events to HTTP statuses and the one response envelope."""

from __future__ import annotations

import pytest

from contracts.error_codes import ERROR_CODES
from orchestrator.ingress.status import (
    pending_body,
    rejected_body,
    result_body,
    status_of_code,
    status_of_result,
)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("input.invalid", 422),
        ("flow.unknown", 404),
        ("request.key_mismatch", 400),
        ("step.timeout", 504),
        ("step.deadline", 504),
        ("step.business_error", 502),
        ("step.technical_error", 502),
        ("step.output_error", 502),
        ("compensation.failed", 502),
        ("result.mapping_error", 500),
        ("flow.changed", 500),
        ("orchestrator.internal_error", 500),
        ("something.new", 500),
        ("", 500),
    ],
)
def test_failed_results_map_by_code_family(code: str, status: int) -> None:
    assert status_of_code(code) == status


def test_every_result_code_maps_to_an_error_status() -> None:
    result_codes = [code for code, entry in ERROR_CODES.items() if entry.where == "result"]

    assert all(400 <= status_of_code(code) < 600 for code in result_codes)


def test_a_completed_result_is_200_even_when_partial_or_with_errors() -> None:
    partial = {
        "status": "completed",
        "complete": False,
        "errors": [{"code": "step.technical_error", "message": "optional step failed"}],
    }

    assert status_of_result(partial) == 200
    assert result_body(partial)["complete"] is False


def test_a_failed_result_maps_by_its_first_error() -> None:
    result = {
        "request_id": "r-1",
        "flow": "f",
        "status": "compensation_failed",
        "complete": False,
        "data": None,
        "errors": [
            {"code": "step.timeout", "message": "no reply"},
            {"code": "compensation.failed", "message": "undo failed"},
        ],
    }

    assert status_of_result(result) == 504
    assert result_body(result) == {
        "request_id": "r-1",
        "flow": "f",
        "status": "compensation_failed",
        "complete": False,
        "data": None,
        "errors": result["errors"],
    }


def _failed(errors: list[dict[str, object]], steps: dict[str, str]) -> dict[str, object]:
    return {
        "status": "failed",
        "errors": errors,
        "steps": [{"step": name, "status": status} for name, status in steps.items()],
    }


OPTIONAL_TIMEOUT = {"code": "step.timeout", "step": "o", "call": "o"}
REQUIRED_DECLINE = {"code": "step.business_error", "step": "r", "call": "r"}


@pytest.mark.parametrize(
    ("errors", "steps", "status"),
    [
        # The optional step defaulted and the saga went on; the required one failed it.
        ([OPTIONAL_TIMEOUT, REQUIRED_DECLINE], {"o": "timed_out", "r": "failed"}, 502),
        # The required step failed first; the optional call in flight failed after.
        (
            [
                {**REQUIRED_DECLINE, "code": "step.timeout"},
                {**OPTIONAL_TIMEOUT, "code": "step.business_error"},
            ],
            {"o": "cancelled", "r": "timed_out"},
            504,
        ),
        # The deadline (no step) ended a saga whose optional step had defaulted.
        ([OPTIONAL_TIMEOUT, {"code": "step.deadline", "step": None}], {"o": "timed_out"}, 504),
        # A for_each optional step partly defaulted: not failing, even unknown as optional.
        (
            [
                {"code": "step.business_error", "step": "p", "call": "p#0"},
                {"code": "step.timeout", "step": "r", "call": "r"},
            ],
            {"p": "partial", "r": "timed_out"},
            504,
        ),
    ],
)
def test_a_failed_result_maps_by_the_error_that_ended_the_saga(
    errors: list[dict[str, object]], steps: dict[str, str], status: int
) -> None:
    result = _failed(errors, steps)

    assert status_of_result(result, optional_steps=frozenset({"o", "p"})) == status


def test_an_optional_steps_condition_error_still_ends_the_saga() -> None:
    condition = {"code": "step.condition_error", "step": "o", "call": None}
    result = _failed([condition], {"o": "failed"})

    assert status_of_result(result, optional_steps=frozenset({"o"})) == 502


def test_every_answer_has_the_same_keys() -> None:
    shapes = {
        frozenset(result_body({"request_id": "r", "status": "completed"})),
        frozenset(pending_body("r", "f")),
        frozenset(rejected_body("ingress.invalid_json", "no")),
    }

    assert shapes == {frozenset({"request_id", "flow", "status", "complete", "data", "errors"})}
