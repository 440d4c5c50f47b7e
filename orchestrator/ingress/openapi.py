"""The OpenAPI 3.1 document of an ingress, generated from the flows it loaded.

Each flow is a ``POST /flows/{name}`` operation whose request body schema is the
flow's ``input_schema`` (JSON Schema 2020-12, which OpenAPI 3.1 uses as is). A
schema with ``$defs`` and no ``$id`` gets an ``$id`` of its own, so its local
``$ref: '#/$defs/...'`` still point into it once it sits inside the document.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from importlib import metadata
from typing import Any

from contracts.flow import FlowDefinition
from orchestrator.ingress.auth import TokenTable
from orchestrator.ingress.errors import INGRESS_CODES
from orchestrator.ingress.status import COMPLETE_HEADER, REQUEST_ID_HEADER

ENVELOPE = "#/components/schemas/Envelope"


def build_openapi(flows: Iterable[FlowDefinition], *, tokens: TokenTable) -> dict[str, Any]:
    """The document for ``flows``; flows that ask for a token say so (``security``)."""
    paths: dict[str, Any] = {}
    for flow in sorted(flows, key=lambda definition: definition.name):
        paths[f"/flows/{flow.name}"] = {"post": _flow_operation(flow, tokens.protects(flow.name))}
    paths["/requests/{request_id}"] = {"get": _lookup_operation(tokens.enabled)}
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "kafka-orchestrator ingress",
            "version": _version(),
            "description": "Runs the loaded flows over Apache Kafka: each POST publishes a "
            "request event and answers with its result event.",
        },
        "paths": paths,
        "components": {"schemas": _schemas(), "headers": _headers()},
    }
    if tokens.enabled:
        document["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        }
    return document


def _flow_operation(flow: FlowDefinition, secured: bool) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": f"run_{flow.name.replace('-', '_')}",
        "summary": flow.description.strip().splitlines()[0]
        if flow.description.strip()
        else f"Run the flow {flow.name}",
        "description": f"Flow `{flow.name}` version {flow.version}.",
        "tags": ["flows"],
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Becomes the request id: the same key runs once and gets the "
                "same result.",
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:~-]{1,200}$"},
            },
            _prefer_parameter(),
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": input_schema(flow)}},
        },
        "responses": _responses(
            {
                "200": "The result (`complete: false`, also in the Orchestrator-Complete "
                "header, when a step used its default).",
                "202": "No result within the wait: fetch it from `Location`.",
                "400": "A bad Idempotency-Key, or a body that is not JSON.",
                "404": "No such flow.",
                "413": "The body is too large.",
                "422": "The input fails the flow's input schema.",
                "500": "The flow could not compose its result.",
                "502": "A service the flow calls failed.",
                "503": "Kafka is not reachable.",
                "504": "A step timed out, or the flow's deadline passed.",
            },
            secured,
        ),
    }
    if secured:
        operation["security"] = [{"bearer": []}, {"apiKey": []}]
    return operation


def _lookup_operation(secured: bool) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": "get_request",
        "summary": "The result of a request, or 202 while it runs",
        "tags": ["requests"],
        "parameters": [
            {"name": "request_id", "in": "path", "required": True, "schema": {"type": "string"}},
            _prefer_parameter(),
        ],
        "responses": _responses(
            {
                "200": "The result.",
                "202": "Accepted by this ingress, no result yet.",
                "404": "No result known for this request id.",
                "422": "The input failed the flow's input schema.",
                "500": "The flow could not compose its result.",
                "502": "A service the flow calls failed.",
                "504": "A step timed out, or the flow's deadline passed.",
            },
            secured,
        ),
    }
    if secured:
        operation["security"] = [{"bearer": []}, {"apiKey": []}]
    return operation


def input_schema(flow: FlowDefinition) -> dict[str, Any]:
    """The flow's input schema, ready to sit inside the document."""
    schema = copy.deepcopy(flow.input_schema)
    if "$defs" in schema and "$id" not in schema:
        schema["$id"] = f"urn:kafka-orchestrator:flow:{flow.name}:input"
    return schema


def _prefer_parameter() -> dict[str, Any]:
    return {
        "name": "Prefer",
        "in": "header",
        "required": False,
        "description": "`wait=N`: wait up to N seconds for the result before answering 202.",
        "schema": {"type": "string", "examples": ["wait=30"]},
    }


def _responses(described: dict[str, str], secured: bool) -> dict[str, Any]:
    if secured:
        described = {**described, "401": "No token, or a wrong one."}
    responses: dict[str, Any] = {}
    for status, description in sorted(described.items()):
        response: dict[str, Any] = {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": ENVELOPE}}},
        }
        if status in ("200", "422", "500", "502", "504"):
            response["headers"] = {
                COMPLETE_HEADER: {"$ref": "#/components/headers/Complete"},
                REQUEST_ID_HEADER: {"$ref": "#/components/headers/RequestId"},
            }
        if status == "202":
            response["headers"] = {
                "Location": {"$ref": "#/components/headers/Location"},
                REQUEST_ID_HEADER: {"$ref": "#/components/headers/RequestId"},
            }
        responses[status] = response
    return responses


def _headers() -> dict[str, Any]:
    return {
        "Complete": {
            "description": "`false` when the result is partial (a step used its default).",
            "schema": {"type": "string", "enum": ["true", "false"]},
        },
        "RequestId": {"description": "The request id.", "schema": {"type": "string"}},
        "Location": {
            "description": "Where to fetch the result: `/requests/{request_id}`.",
            "schema": {"type": "string"},
        },
    }


def _schemas() -> dict[str, Any]:
    codes = sorted(INGRESS_CODES)
    return {
        "Envelope": {
            "type": "object",
            "required": ["request_id", "flow", "status", "complete", "data", "errors"],
            "properties": {
                "request_id": {"type": ["string", "null"]},
                "flow": {"type": ["string", "null"]},
                "status": {
                    "enum": ["completed", "failed", "compensation_failed", "pending", "rejected"]
                },
                "complete": {"type": ["boolean", "null"]},
                "data": {"description": "The flow's composed result; null unless completed."},
                "errors": {"type": "array", "items": {"$ref": "#/components/schemas/Error"}},
            },
        },
        "Error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {
                    "type": "string",
                    "description": "A stable code: a result's (see the README) or one of "
                    + ", ".join(codes)
                    + ".",
                },
                "message": {"type": "string"},
                "step": {"type": ["string", "null"]},
                "call": {"type": ["string", "null"]},
                "adapter_code": {"type": ["string", "null"]},
            },
        },
    }


def _version() -> str:
    try:
        return metadata.version("kafka-orchestrator")
    except metadata.PackageNotFoundError:
        return "0"
