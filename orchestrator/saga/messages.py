"""What the saga core is told (events) and what it asks the shell to do (actions)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from handlers.outcome import OutcomeStatus


@dataclass(frozen=True, slots=True)
class CallReplied:
    """An adapter answered one call (in-process, or as a reply event)."""

    call: str
    attempt: int
    status: OutcomeStatus
    at_ms: int
    output: Any = None
    error_code: str | None = None
    error_message: str = ""


@dataclass(frozen=True, slots=True)
class CallTimedOut:
    """No answer came for one call before its deadline."""

    call: str
    attempt: int
    at_ms: int


SagaEvent = CallReplied | CallTimedOut


@dataclass(frozen=True, slots=True)
class DispatchCall:
    """Perform one call; its answer comes back as :class:`CallReplied`.

    The shell also arms a timer that delivers :class:`CallTimedOut` at ``deadline_ms``.
    """

    request_id: str
    flow: str
    step: str
    call: str
    attempt: int
    service: str
    operation: str
    input: Any
    deadline_ms: int
    correlation_id: str
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class PublishResult:
    """Publish the one result event of the request (a :class:`contracts.ResultEvent`)."""

    result: dict[str, Any]


SagaAction = DispatchCall | PublishResult
