"""Map a result event to an HTTP status and a response body (the envelope).

Every answer of ``POST /flows/{name}`` and ``GET /requests/{id}`` has one shape::

    {"request_id": "r-1", "flow": "order-details", "status": "completed",
     "complete": true, "data": {...}, "errors": []}

``status`` is the result's (``completed``, ``failed``, ``compensation_failed``),
``pending`` while there is no result yet (202), or ``rejected`` when the ingress
refused the request itself. A failed result's HTTP status comes from the code of
the error that ended the saga (:func:`deciding_error`), by family
(:data:`STATUS_BY_CODE`).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

STATUS_BY_CODE: tuple[tuple[str, int], ...] = (
    ("input.invalid", HTTPStatus.UNPROCESSABLE_ENTITY),
    ("flow.unknown", HTTPStatus.NOT_FOUND),
    ("request.", HTTPStatus.BAD_REQUEST),
    ("step.timeout", HTTPStatus.GATEWAY_TIMEOUT),
    ("step.deadline", HTTPStatus.GATEWAY_TIMEOUT),
    ("step.", HTTPStatus.BAD_GATEWAY),
    ("compensation.", HTTPStatus.BAD_GATEWAY),
    ("result.", HTTPStatus.INTERNAL_SERVER_ERROR),
    ("flow.changed", HTTPStatus.INTERNAL_SERVER_ERROR),
    ("orchestrator.", HTTPStatus.INTERNAL_SERVER_ERROR),
)
"""Error code (exact, or a family ending in a dot) -> HTTP status, first match wins.
A code that matches none answers 500."""

COMPLETE_HEADER = "Orchestrator-Complete"
"""``true`` or ``false`` on every answer that carries a result."""
REQUEST_ID_HEADER = "Orchestrator-Request-Id"


def status_of_code(code: str) -> int:
    """The HTTP status for a failed result whose first error has ``code``."""
    for pattern, status in STATUS_BY_CODE:
        if code == pattern or (pattern.endswith(".") and code.startswith(pattern)):
            return int(status)
    return int(HTTPStatus.INTERNAL_SERVER_ERROR)


FAILING_STEP = frozenset({"failed", "timed_out", "compensation_failed"})
"""Step summary statuses of a step that may have ended the saga."""


def deciding_error(
    result: dict[str, Any], *, optional_steps: frozenset[str] = frozenset()
) -> dict[str, Any] | None:
    """The error that ended a failed saga, among the result's ``errors``.

    ``errors`` are in the order they happened (:mod:`orchestrator.saga.core`): first
    the failures of optional steps' calls that yielded their default (the saga
    carried on), then the one that failed the saga (a required step's call, a
    step's ``when``/``input``, ``step.deadline``, ``result.mapping_error``, or a
    flow-level code with no step), then failures of calls still in flight and of
    compensations. So the first error that is neither a defaulted optional call
    (a call error of a step in ``optional_steps``) nor of a step whose summary
    says it did not fail is the one; the first error if none is.
    """
    errors = [error for error in result.get("errors") or [] if isinstance(error, dict)]
    summary = {
        step.get("step"): step.get("status")
        for step in result.get("steps") or []
        if isinstance(step, dict)
    }
    for error in errors:
        step = error.get("step")
        if step is None:
            return error
        if step in optional_steps and error.get("call") is not None:
            continue
        if summary.get(step, "failed") in FAILING_STEP:
            return error
    return errors[0] if errors else None


def status_of_result(
    result: dict[str, Any], *, optional_steps: frozenset[str] = frozenset()
) -> int:
    """200 for a completed result (complete or not); otherwise by the error that
    ended the saga (``optional_steps``: the flow's steps that have a default)."""
    if result.get("status") == "completed":
        return int(HTTPStatus.OK)
    error = deciding_error(result, optional_steps=optional_steps)
    return status_of_code(str(error.get("code", "")) if error is not None else "")


def result_body(result: dict[str, Any]) -> dict[str, Any]:
    """The envelope of a result event."""
    return {
        "request_id": result.get("request_id"),
        "flow": result.get("flow"),
        "status": result.get("status"),
        "complete": bool(result.get("complete", True)),
        "data": result.get("data"),
        "errors": result.get("errors") or [],
    }


def pending_body(request_id: str, flow: str | None) -> dict[str, Any]:
    """The envelope of a request without a result yet."""
    return {
        "request_id": request_id,
        "flow": flow,
        "status": "pending",
        "complete": None,
        "data": None,
        "errors": [],
    }


def rejected_body(
    code: str, message: str, *, request_id: str | None = None, flow: str | None = None
) -> dict[str, Any]:
    """The envelope of a request the ingress refused itself."""
    return {
        "request_id": request_id,
        "flow": flow,
        "status": "rejected",
        "complete": None,
        "data": None,
        "errors": [{"code": code, "message": message}],
    }
