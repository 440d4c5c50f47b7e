"""What the saga core is told (events) and what it asks the shell to do (actions)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from handlers.outcome import CallOutcome, OutcomeStatus


@dataclass(frozen=True, slots=True)
class CallReplied:
    """An adapter answered one attempt of one call (in-process, or as a reply event)."""

    call: str
    attempt: int
    status: OutcomeStatus
    at_ms: int
    output: Any = None
    error_code: str | None = None
    error_message: str = ""
    retry_after_ms: int | None = None

    @classmethod
    def from_outcome(
        cls, outcome: CallOutcome, *, call: str, attempt: int, at_ms: int
    ) -> CallReplied:
        """The event for an in-process adapter's :class:`~handlers.CallOutcome`."""
        return cls(
            call=call,
            attempt=attempt,
            status=outcome.status,
            at_ms=at_ms,
            output=outcome.output,
            error_code=outcome.error_code,
            error_message=outcome.error_message,
            retry_after_ms=outcome.retry_after_ms,
        )


@dataclass(frozen=True, slots=True)
class CallTimedOut:
    """No answer came for one attempt of one call before its deadline."""

    call: str
    attempt: int
    at_ms: int


@dataclass(frozen=True, slots=True)
class RetryDue:
    """The backoff before attempt ``attempt`` of ``call`` is over."""

    call: str
    attempt: int
    at_ms: int


@dataclass(frozen=True, slots=True)
class SagaDeadlinePassed:
    """The flow's ``deadline_ms`` has passed."""

    at_ms: int


SagaEvent = CallReplied | CallTimedOut | RetryDue | SagaDeadlinePassed


@dataclass(frozen=True, slots=True)
class DispatchCall:
    """Perform one attempt of one call; its answer comes back as :class:`CallReplied`.

    The shell also arms a timer that delivers :class:`CallTimedOut` at ``deadline_ms``.
    A compensation is a call like any other; its ``call`` id ends in ``~undo``.
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


TimerKind = Literal["retry", "saga_deadline"]


@dataclass(frozen=True, slots=True)
class ArmTimer:
    """Deliver :class:`RetryDue` (``retry``) or :class:`SagaDeadlinePassed` at ``at_ms``.

    Timers live in the shell's one deadline heap; the core ignores a timer that
    fires when it no longer matters, so the shell never has to cancel one.
    """

    kind: TimerKind
    at_ms: int
    call: str = ""
    attempt: int = 0


@dataclass(frozen=True, slots=True)
class PublishResult:
    """Publish the one result event of the request (a :class:`contracts.ResultEvent`)."""

    result: dict[str, Any]


IgnoredReason = Literal["finished_call", "old_attempt", "finished_saga", "unknown_call"]


@dataclass(frozen=True, slots=True)
class EventIgnored:
    """An answer or timer that no longer matters (a late or stray reply, an old attempt).

    The shell counts these and logs them at debug; they never change the saga.
    """

    reason: IgnoredReason
    call: str
    attempt: int
    late_reply: bool


SagaAction = DispatchCall | ArmTimer | PublishResult | EventIgnored
