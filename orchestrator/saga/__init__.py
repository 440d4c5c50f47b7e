"""The pure saga core: state, events, actions and the decision function."""

from orchestrator.saga.core import decide, start_saga
from orchestrator.saga.messages import (
    ArmTimer,
    CallReplied,
    CallTimedOut,
    DispatchCall,
    EventIgnored,
    PublishResult,
    RetryDue,
    SagaAction,
    SagaDeadlinePassed,
    SagaEvent,
)
from orchestrator.saga.result import rejected_result
from orchestrator.saga.state import SagaState, StepProgress, correlation_id, parse_correlation_id

__all__ = [
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
]
