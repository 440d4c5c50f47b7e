"""Saga coordinator for API flows over Apache Kafka.

The front door: load flows, run a coordinator, send requests::

    from orchestrator import CoordinatorSettings, OrchestratorClient, SagaCoordinator, load_flows

Each public name is imported on first use (module ``__getattr__``): importing any
``orchestrator.*`` module, the pure core, the flow loader or the CLI, does not load
Kafka, HTTP, tracing or metrics libraries it does not need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.builder import FlowBuilder
    from orchestrator.client import OrchestratorClient
    from orchestrator.errors import OrchestratorError
    from orchestrator.flow import compile_flow
    from orchestrator.flow_files import FlowRegistry, load_flows
    from orchestrator.runtime.coordinator import SagaCoordinator
    from orchestrator.settings import CoordinatorSettings

_HOMES = {
    "CoordinatorSettings": "orchestrator.settings",
    "FlowBuilder": "orchestrator.builder",
    "FlowRegistry": "orchestrator.flow_files",
    "OrchestratorClient": "orchestrator.client",
    "OrchestratorError": "orchestrator.errors",
    "SagaCoordinator": "orchestrator.runtime.coordinator",
    "compile_flow": "orchestrator.flow",
    "load_flows": "orchestrator.flow_files",
}
"""Where each public name lives."""

__all__ = [
    "CoordinatorSettings",
    "FlowBuilder",
    "FlowRegistry",
    "OrchestratorClient",
    "OrchestratorError",
    "SagaCoordinator",
    "compile_flow",
    "load_flows",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # asked once: later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
