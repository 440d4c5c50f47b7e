"""Small flows over test HTTP servers, for integration tests."""

from __future__ import annotations

from typing import Any

from orchestrator.builder import FlowBuilder
from orchestrator.catalog import catalog_from_data
from orchestrator.flow import compile_flow
from orchestrator.flow_files import FlowRegistry


def single_call_registry(
    *,
    base_url: str,
    timeout_ms: int = 10_000,
    extra_services: dict[str, Any] | None = None,
    service: str = "echo",
) -> FlowRegistry:
    """A flow 'one-call' that calls ``GET <base_url>/items/{id}`` on ``service`` once."""
    services: dict[str, Any] = {
        "echo": {
            "kind": "http",
            "allow": {"loopback": True},
            "base_url": base_url,
            "operations": {"get": {"path": "/items/{id}"}},
        },
        **(extra_services or {}),
    }
    catalog = catalog_from_data({"services": services}, source="test catalog")
    operation = "get" if service == "echo" else "lookup"
    definition = FlowBuilder("one-call", timeout_ms=timeout_ms).result({"answer": "call"})
    definition.step("call", service=service, operation=operation, input={"id": "input.id"})
    flow = compile_flow(definition.build(), catalog=catalog)
    return FlowRegistry(flows={flow.name: flow}, catalog=catalog)
