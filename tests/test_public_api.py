"""Pins each package's public names: changing them must be a deliberate edit here."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "contracts": [
        "SCHEMA_VERSION",
        "CallTiming",
        "CompensationDefinition",
        "CompensationTiming",
        "Contract",
        "ErrorDetail",
        "FlowDefaults",
        "FlowDefinition",
        "HttpOperation",
        "HttpService",
        "KafkaService",
        "Mapping",
        "OperationCache",
        "PythonService",
        "ReplyError",
        "RequestEvent",
        "ResultEvent",
        "RetryPolicy",
        "ServiceCatalog",
        "ServiceDefinition",
        "StepCommand",
        "StepDefinition",
        "StepReply",
        "StepSummary",
        "command_topic_of",
    ],
    "orchestrator": [
        "CoordinatorSettings",
        "FlowBuilder",
        "FlowRegistry",
        "OrchestratorClient",
        "OrchestratorError",
        "SagaCoordinator",
        "compile_flow",
        "load_flows",
    ],
    "orchestrator.saga": [
        "ArmTimer",
        "CallReplied",
        "CallTimedOut",
        "DispatchCall",
        "EventIgnored",
        "PublishResult",
        "RetryDue",
        "SagaAction",
        "SagaDeadlinePassed",
        "SagaEvent",
        "SagaState",
        "StepProgress",
        "correlation_id",
        "decide",
        "parse_correlation_id",
        "rejected_result",
        "start_saga",
    ],
    "handlers": [
        "AdapterSetupError",
        "BusinessError",
        "CallContext",
        "CallOutcome",
        "HandlerError",
        "HttpAdapter",
        "Service",
        "build_worker",
    ],
    "orchestrator.ingress": [
        "IngressConfig",
        "TokenTable",
        "build_openapi",
        "create_app",
        "load_tokens",
        "status_of_code",
        "status_of_result",
    ],
    "orchestrator.localkafka": [
        "BrokerInfo",
        "BrokerSettings",
        "BrokerStatus",
        "SecureListeners",
        "bootstrap_from_env",
        "ensure_kafka_jars",
        "running_broker",
        "start",
        "status",
        "stop",
    ],
    "orchestrator.asyncapi": ["ASYNCAPI_VERSION", "asyncapi_document"],
    "orchestrator.timeline": [
        "Timeline",
        "TimelineReader",
        "TimelineStore",
        "create_timeline_app",
        "timeline_routes",
    ],
}


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_public_names_are_pinned(package: str) -> None:
    module = importlib.import_module(package)

    assert sorted(module.__all__) == sorted(PUBLIC[package])
    for name in module.__all__:
        assert hasattr(module, name), f"{package}.{name} is exported but missing"
