"""Wire and definition contracts of the orchestrator: frozen pydantic models."""

from contracts.base import SCHEMA_VERSION, Contract
from contracts.catalog import (
    HttpOperation,
    HttpService,
    KafkaService,
    OperationCache,
    PythonService,
    ServiceCatalog,
    ServiceDefinition,
    command_topic_of,
)
from contracts.events import (
    CallTiming,
    CompensationTiming,
    ErrorDetail,
    ReplyError,
    RequestEvent,
    ResultEvent,
    StepCommand,
    StepReply,
    StepSummary,
)
from contracts.flow import (
    CompensationDefinition,
    FlowDefaults,
    FlowDefinition,
    Mapping,
    RetryPolicy,
    StepDefinition,
)

__all__ = [
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
]
