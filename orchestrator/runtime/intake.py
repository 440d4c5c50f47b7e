"""Admit a request record, or reject it with a stable code (pure, no I/O).

======================  ==================================================
code                    meaning
======================  ==================================================
request.missing_headers a required CloudEvents header is absent
request.wrong_type      ``ce_type`` is not ``orchestrator.request.v1``
request.too_large       the record's value is over ``ORCH_MAX_REQUEST_BYTES``
request.undecodable     the payload is not a JSON object
request.invalid         the payload is not a valid request event
request.key_mismatch    the record's key is missing or is not the request id
flow.unknown            no flow of that name is loaded
input.too_deep          the input nests deeper than ``ORCH_MAX_INPUT_DEPTH``
input.too_long          an input array is longer than ``ORCH_MAX_INPUT_ARRAY_LENGTH``
input.invalid           the input fails the flow's input schema
======================  ==================================================

The size is checked on the raw bytes, before anything is parsed; the shape of
the input (depth, array lengths) before the input schema runs, without recursion
(see :mod:`orchestrator.limits`). A payload orjson refuses for its depth (over
1,024 levels) is ``input.too_deep`` too.

(The coordinator adds ``orchestrator.internal_error`` for a record it failed on.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from contracts import cloudevents
from contracts.events import RequestEvent
from orchestrator.flow import CompiledFlow
from orchestrator.flow_files import FlowRegistry
from orchestrator.limits import Limits, ShapeError, check_shape
from orchestrator.runtime.records import cap_reason
from orchestrator.validation_messages import describe_validation_error


@dataclass(frozen=True, slots=True)
class AdmittedRequest:
    """A request that can start a saga."""

    request_id: str
    flow: CompiledFlow
    input: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RejectedRequest:
    """A request that cannot run. ``request_id`` is None when it could not be found."""

    request_id: str | None
    flow: str | None
    code: str
    message: str


def admit(
    *,
    value: bytes | None,
    key: bytes | None,
    headers: dict[str, str],
    registry: FlowRegistry,
    limits: Limits | None = None,
) -> AdmittedRequest | RejectedRequest:
    """Decide whether a request record can run."""
    limits = limits or Limits()
    payload: Any = None
    size = len(value or b"")
    too_deep = False
    if size <= limits.max_request_bytes:
        try:
            payload = orjson.loads(value or b"")
        except orjson.JSONDecodeError as error:
            too_deep = "depth" in str(error)
            payload = None
    request_id = _find_request_id(payload, key, headers)
    flow_name = payload.get("flow") if isinstance(payload, dict) else None
    flow_name = flow_name if isinstance(flow_name, str) else None

    def reject(code: str, message: str) -> RejectedRequest:
        return RejectedRequest(request_id=request_id, flow=flow_name, code=code, message=message)

    missing = cloudevents.missing_headers(headers)
    if missing:
        return reject(
            "request.missing_headers",
            f"the record lacks the CloudEvents header(s) {', '.join(missing)}",
        )
    if headers[cloudevents.TYPE] != cloudevents.TYPE_REQUEST:
        return reject(
            "request.wrong_type",
            f"ce_type is {headers[cloudevents.TYPE]!r}, expected {cloudevents.TYPE_REQUEST!r}",
        )
    if size > limits.max_request_bytes:
        return reject(
            "request.too_large",
            f"the record's value has {size} bytes; at most {limits.max_request_bytes} are "
            "allowed (ORCH_MAX_REQUEST_BYTES)",
        )
    if too_deep:
        return reject("input.too_deep", "the payload is nested more than 1,024 levels deep")
    if not isinstance(payload, dict):
        return reject("request.undecodable", "the payload is not a JSON object")
    try:
        # Before pydantic and jsonschema walk it (recursively).
        check_shape(
            payload.get("input"),
            max_depth=limits.max_input_depth,
            max_array_length=limits.max_input_array_length,
        )
    except ShapeError as error:
        return reject(error.code, cap_reason(str(error)))
    try:
        request = RequestEvent.model_validate(payload)
    except ValidationError as error:
        return reject("request.invalid", "; ".join(describe_validation_error(error)))
    if key is None or key != request.request_id.encode():
        # One request id must always land on one partition: the one whose owner
        # runs it and remembers it (clients key requests by their id).
        found = "has no key" if key is None else f"has the key {key.decode(errors='replace')!r}"
        return reject(
            "request.key_mismatch",
            f"the record {found}; it must be keyed by its request_id "
            f"{request.request_id!r} so that copies of it reach the same partition",
        )
    flow = registry.get(request.flow)
    if flow is None:
        known = ", ".join(sorted(registry.flows)) or "none"
        return reject("flow.unknown", f"no flow named {request.flow!r} (loaded flows: {known})")
    problems = sorted(flow.input_validator.iter_errors(request.input), key=lambda e: list(e.path))
    if problems:
        first = problems[0]
        where = "/".join(str(part) for part in first.absolute_path) or "input"
        # jsonschema quotes the offending value, which may be most of a 1 MB input.
        return reject("input.invalid", cap_reason(f"{where}: {first.message}"))
    return AdmittedRequest(request_id=request.request_id, flow=flow, input=request.input)


def request_id_of(value: bytes | None, key: bytes | None, headers: dict[str, str]) -> str | None:
    """The request id of a record, wherever it can be found (payload, key, ``ce_id``)."""
    try:
        payload = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        payload = None
    return _find_request_id(payload, key, headers)


def _find_request_id(payload: Any, key: bytes | None, headers: dict[str, str]) -> str | None:
    if (
        isinstance(payload, dict)
        and isinstance(payload.get("request_id"), str)
        and payload["request_id"]
    ):
        return str(payload["request_id"])
    if key:
        try:
            return key.decode()
        except UnicodeDecodeError:
            pass
    return headers.get(cloudevents.ID) or None
