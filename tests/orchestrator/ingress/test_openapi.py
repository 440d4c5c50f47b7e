"""The OpenAPI document generated from loaded flows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from contracts.flow import FlowDefinition
from orchestrator.ingress.auth import TokenTable
from orchestrator.ingress.openapi import build_openapi

DEMO_FLOWS = Path(__file__).parents[3] / "handlers" / "demo" / "flows"
SCHEMA = {
    "type": "object",
    "required": ["order_id"],
    "properties": {"order_id": {"type": "string", "minLength": 1}},
}


def flow(name: str, schema: dict[str, Any] | None = None, **fields: Any) -> FlowDefinition:
    return FlowDefinition.model_validate(
        {
            "name": name,
            "input_schema": schema or SCHEMA,
            "steps": {"a": {"service": "s", "operation": "o", "input": {}}},
            "result": "a",
            **fields,
        }
    )


def test_each_flow_is_a_post_whose_body_schema_is_its_input_schema() -> None:
    document = build_openapi(
        [flow("order-details", description="Everything about an order.\nMore."), flow("b")],
        tokens=TokenTable(),
    )

    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) == {"/flows/order-details", "/flows/b", "/requests/{request_id}"}
    operation = document["paths"]["/flows/order-details"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == SCHEMA
    assert operation["summary"] == "Everything about an order."
    assert operation["operationId"] == "run_order_details"
    assert {"200", "202", "404", "413", "422", "502", "504"} <= set(operation["responses"])
    assert "401" not in operation["responses"]
    assert "security" not in operation
    assert "securitySchemes" not in document["components"]
    envelope = document["components"]["schemas"]["Envelope"]
    assert envelope["required"] == ["request_id", "flow", "status", "complete", "data", "errors"]


def test_protected_flows_name_their_security() -> None:
    tokens = TokenTable(tokens={"secret": (b"t",)})

    document = build_openapi([flow("secret"), flow("open")], tokens=tokens)

    secret = document["paths"]["/flows/secret"]["post"]
    assert secret["security"] == [{"bearer": []}, {"apiKey": []}]
    assert "401" in secret["responses"]
    assert "security" not in document["paths"]["/flows/open"]["post"]
    assert set(document["components"]["securitySchemes"]) == {"bearer", "apiKey"}


def test_a_schema_with_local_definitions_gets_its_own_id() -> None:
    schema = {
        "type": "object",
        "properties": {"line": {"$ref": "#/$defs/line"}},
        "$defs": {"line": {"type": "object"}},
    }

    document = build_openapi([flow("lines", schema)], tokens=TokenTable())

    body = document["paths"]["/flows/lines"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"]["$id"] == "urn:kafka-orchestrator:flow:lines:input"
    assert "$id" not in schema


def test_the_document_of_the_demo_flows_is_valid_openapi_3_1() -> None:
    validator = pytest.importorskip(
        "openapi_spec_validator", reason="openapi-spec-validator is not installed"
    )
    definitions = [
        FlowDefinition.model_validate(yaml.safe_load(path.read_text()))
        for path in sorted(DEMO_FLOWS.glob("*.yaml"))
        if not path.name.startswith("services")
    ]
    lines = {
        "type": "object",
        "properties": {"line": {"$ref": "#/$defs/line"}},
        "$defs": {"line": {"type": "string"}},
    }
    document = build_openapi(
        [*definitions, flow("lines", lines)], tokens=TokenTable(tokens={"place-order": (b"t",)})
    )

    validator.validate(document)
    assert {"/flows/order-details", "/flows/place-order"} <= set(document["paths"])
