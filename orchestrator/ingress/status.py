"""Map a result event to an HTTP status and a response body (the envelope).

Every answer of ``POST /flows/{name}`` and ``GET /requests/{id}`` has one shape::

    {"request_id": "r-1", "flow": "order-details", "status": "completed",
     "complete": true, "data": {...}, "errors": []}

``status`` is the result's (``completed``, ``failed``, ``compensation_failed``),
``pending`` while there is no result yet (202), or ``rejected`` when the ingress
refused the request itself. A failed result's HTTP status comes from its first
error's code, by family (:data:`STATUS_BY_CODE`).
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


def status_of_result(result: dict[str, Any]) -> int:
    """200 for a completed result (complete or not); otherwise by its first error."""
    if result.get("status") == "completed":
        return int(HTTPStatus.OK)
    errors = result.get("errors") or []
    code = errors[0].get("code", "") if errors and isinstance(errors[0], dict) else ""
    return status_of_code(code)


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
