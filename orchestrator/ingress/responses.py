"""The HTTP responses of the ingress: JSON bodies in the one envelope, with headers."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import orjson
from starlette.responses import Response

from orchestrator.ingress.errors import IngressRefusal
from orchestrator.ingress.status import (
    COMPLETE_HEADER,
    REQUEST_ID_HEADER,
    pending_body,
    rejected_body,
    result_body,
    status_of_result,
)


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status_code=int(status), media_type="application/json", headers=headers
    )


def answer(result: dict[str, Any], *, optional_steps: frozenset[str] = frozenset()) -> Response:
    body = result_body(result)
    return json_response(
        status_of_result(result, optional_steps=optional_steps),
        body,
        {
            COMPLETE_HEADER: "true" if body["complete"] else "false",
            REQUEST_ID_HEADER: str(body["request_id"]),
        },
    )


def pending(request_id: str, flow: str | None) -> Response:
    return json_response(
        HTTPStatus.ACCEPTED,
        pending_body(request_id, flow),
        {
            "Location": f"/requests/{request_id}",
            REQUEST_ID_HEADER: request_id,
            "Retry-After": "1",
        },
    )


def refused(
    refusal: IngressRefusal, *, flow: str | None = None, request_id: str | None = None
) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if refusal.status == HTTPStatus.UNAUTHORIZED else None
    return json_response(
        refusal.status,
        rejected_body(refusal.code, refusal.message, request_id=request_id, flow=flow),
        headers,
    )
