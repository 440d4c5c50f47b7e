"""What one adapter call produced: an output, a business error or a technical error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

OutcomeStatus = Literal["ok", "business_error", "technical_error"]


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """The result of one call, as an in-process adapter returns it.

    Remote adapters send the same three cases as a :class:`contracts.StepReply`.
    """

    status: OutcomeStatus
    output: Any = None
    error_code: str | None = None
    error_message: str = ""
    retry_after_ms: int | None = None
    """For a technical error: the earliest a retry is welcome (an HTTP ``Retry-After``)."""

    @classmethod
    def ok(cls, output: Any) -> CallOutcome:
        """A successful call and its JSON-ready output."""
        return cls(status="ok", output=output)

    @classmethod
    def business_error(cls, code: str, message: str) -> CallOutcome:
        """A definite no from the service: retrying will not change it."""
        return cls(status="business_error", error_code=code, error_message=message)

    @classmethod
    def technical_error(
        cls, code: str, message: str, *, retry_after_ms: int | None = None
    ) -> CallOutcome:
        """The call could not be performed; a retry may succeed."""
        return cls(
            status="technical_error",
            error_code=code,
            error_message=message,
            retry_after_ms=retry_after_ms,
        )
