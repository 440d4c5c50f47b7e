"""Saga coordinator for API flows over Apache Kafka.

The front door: load flows, run a coordinator, send requests::

    from orchestrator import CoordinatorSettings, OrchestratorClient, SagaCoordinator, load_flows
"""

from orchestrator.builder import FlowBuilder
from orchestrator.client import OrchestratorClient
from orchestrator.errors import OrchestratorError
from orchestrator.flow import compile_flow
from orchestrator.flow_files import FlowRegistry, load_flows
from orchestrator.runtime.coordinator import SagaCoordinator
from orchestrator.settings import CoordinatorSettings

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
