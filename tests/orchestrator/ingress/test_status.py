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


def test_every_answer_has_the_same_keys() -> None:
    shapes = {
        frozenset(result_body({"request_id": "r", "status": "completed"})),
        frozenset(pending_body("r", "f")),
        frozenset(rejected_body("ingress.invalid_json", "no")),
    }

    assert shapes == {frozenset({"request_id", "flow", "status", "complete", "data", "errors"})}
