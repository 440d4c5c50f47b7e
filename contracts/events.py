"""The events on the wire: request, step command, step reply, result.

Payloads are JSON (serialised with orjson); every event also carries CloudEvents 1.0
binary-mode headers (see :mod:`contracts.cloudevents`) and has the request id as its
Kafka message key, so every event of one request lands on the same partition.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from contracts.base import Contract

RequestId = str

RESULT_SCHEMA_VERSION = 3
"""Results are at version 3 (additive over 2, which is additive over 1); the other
events are at 1."""


class RequestEvent(Contract):
    """A client asks for one run of a flow.

    The request id is the idempotency key of the whole run: the same id delivered
    twice gives one saga and one logical result.
    """

    schema_version: Literal[1] = 1
    request_id: RequestId = Field(min_length=1, max_length=256)
    flow: str = Field(min_length=1, max_length=200, description="Name of the flow to run.")
    input: dict[str, Any] = Field(default_factory=dict, description="The flow's input.")


class StepCommand(Contract):
    """The coordinator asks a remote service adapter to perform one call.

    ``correlation_id`` is deterministic (``<request id>:<call>:<attempt>``), so a
    redelivered command can be recognised; ``idempotency_key`` is the same for
    every attempt of one call and should be passed to the downstream API;
    ``reply_token`` must come back in the reply, unchanged.
    """

    schema_version: Literal[1] = 1
    request_id: RequestId
    flow: str
    step: str
    call: str = Field(description="The step name, or '<step>#<index>' for a for_each call.")
    attempt: int = Field(ge=1)
    service: str
    operation: str
    input: Any
    deadline_ms: int = Field(description="Epoch milliseconds after which no reply is awaited.")
    correlation_id: str
    idempotency_key: str
    reply_token: str | None = Field(
        default=None,
        max_length=256,
        description="An unguessable token the reply must echo in its `reply_token`: it "
        "proves the reply answers a command the coordinator sent (correlation ids are "
        "predictable). Always set by the coordinator; None only from older coordinators.",
    )


class ReplyError(Contract):
    """Why a call failed, as the adapter reports it."""

    code: str = Field(min_length=1, description="Stable machine-readable code, e.g. 'http.404'.")
    message: str = ""


class StepReply(Contract):
    """A service adapter's answer to a :class:`StepCommand`.

    ``business_error`` is a definite no from the service (not found, rejected);
    ``technical_error`` means the call could not be performed (unreachable, 5xx).
    """

    schema_version: Literal[1] = 1
    request_id: RequestId
    correlation_id: str
    status: Literal["ok", "business_error", "technical_error"]
    output: Any = None
    error: ReplyError | None = None
    retry_after_ms: int | None = Field(
        default=None,
        ge=0,
        description="For a technical error: the earliest a retry is welcome (Retry-After).",
    )
    reply_token: str | None = Field(
        default=None,
        max_length=256,
        description="The `reply_token` of the command it answers, echoed unchanged; a reply "
        "whose token does not match is dead-lettered (`reply.unauthenticated`).",
    )

    @model_validator(mode="after")
    def _error_matches_status(self) -> StepReply:
        if self.status == "ok" and self.error is not None:
            raise ValueError("an 'ok' reply must not carry an error")
        if self.status != "ok" and self.error is None:
            raise ValueError(f"a '{self.status}' reply must carry an error with a code")
        return self


class ErrorDetail(Contract):
    """One reason a request failed, or one failed call of an optional step."""

    code: str = Field(description="Stable code, e.g. 'flow.unknown' or 'step.timeout'.")
    message: str
    step: str | None = None
    call: str | None = None
    adapter_code: str | None = Field(
        default=None, description="The adapter's own error code, when it gave one."
    )


StepStatus = Literal[
    "ok",
    "partial",
    "failed",
    "timed_out",
    "skipped",
    "compensated",
    "compensation_failed",
    "cancelled",
    "not_run",
]
"""How a step ended.

``ok``: every call succeeded. ``partial``: some calls of a ``for_each`` failed and
yielded their default. ``failed``: the step failed for good (its calls used their
default, or the saga failed because of it). ``timed_out``: as ``failed``, the last
attempt timed out. ``skipped``: its ``when`` was false. ``compensated``: it
succeeded and was undone because the saga failed. ``compensation_failed``: it
succeeded and could not be undone. ``cancelled``: its calls were sent, and the
saga failed before all of them finished (retries and queued calls were dropped).
``not_run``: no call of it was ever sent.
"""

ResultStatus = Literal["completed", "failed", "compensation_failed"]


CallOutcome = Literal["ok", "failed", "timed_out", "cancelled", "not_run", "running"]
"""How one call ended: as :data:`StepStatus` for one call; ``not_run``: held back by
the step's ``concurrency`` and never sent; ``running``: not final (only in a result
of a saga that was cut short)."""

MAX_TIMED_CALLS_PER_STEP = 20
"""A step's ``call_timeline`` holds its first calls only, so a result stays small
however wide a ``for_each`` fans out (``calls`` still counts them all)."""

MAX_TIMED_CALLS = 200
"""No result holds more timed calls than this, over all its steps."""


class CompensationTiming(Contract):
    """When and how the undo of one call ran. Times are ms since the saga started."""

    started_ms: int | None = Field(description="When its first attempt was sent.")
    finished_ms: int | None = Field(description="When it ended; None if it never did.")
    attempts: int = Field(ge=0)
    outcome: Literal["ok", "failed", "running"]
    error_code: str | None = Field(
        default=None, description="Why it failed, e.g. 'compensation.failed'."
    )


class CallTiming(Contract):
    """When and how one call of a step ran, for a time axis.

    Times are milliseconds since the saga started (``started_at_ms`` of the result).
    """

    call: str = Field(description="The step name, or '<step>#<index>' for a for_each call.")
    started_ms: int | None = Field(
        description="When the call began (its first attempt was sent, or it took the "
        "answer of an identical call); None if it never began."
    )
    finished_ms: int | None = Field(description="When it became final; None if it never did.")
    attempts: int = Field(
        ge=0, description="Attempts sent (0: it took an identical call's answer)."
    )
    outcome: CallOutcome
    error_code: str | None = Field(default=None, description="Why it failed, e.g. 'step.timeout'.")
    compensation: CompensationTiming | None = Field(
        default=None, description="Its undo, if the saga failed and the step has a compensate."
    )


class StepSummary(Contract):
    """How one step of the flow went."""

    step: str
    status: StepStatus
    calls: int = Field(ge=0, description="Calls dispatched (1, or one per for_each item).")
    failed_calls: int = Field(ge=0)
    attempts: int = Field(default=0, ge=0, description="Attempts made by all its calls.")
    compensated_calls: int = Field(default=0, ge=0, description="Calls undone.")
    duration_ms: int | None = None
    started_ms: int | None = Field(
        default=None, description="When the step began, in ms since the saga started."
    )
    finished_ms: int | None = Field(
        default=None, description="When the step finished, in ms since the saga started."
    )
    call_timeline: list[CallTiming] = Field(
        default_factory=list,
        max_length=MAX_TIMED_CALLS_PER_STEP,
        description=f"Its first calls (at most {MAX_TIMED_CALLS_PER_STEP} per step, "
        f"{MAX_TIMED_CALLS} per result) on a time axis.",
    )


class ResultEvent(Contract):
    """The one composed result of a request, published exactly once per request id.

    Version 2 is additive over version 1: ``complete``, ``flow_version``, the
    ``compensation_failed`` status, more step statuses and per-step ``attempts``.
    Version 3 is additive over version 2: per-step ``started_ms``/``finished_ms`` and
    ``call_timeline`` (when each call and its undo ran, for the timeline page).
    """

    schema_version: Literal[1, 2, 3] = 3
    request_id: RequestId
    flow: str | None = Field(description="None when the request could not be decoded.")
    flow_version: int | None = Field(
        default=None, description="The version of the flow that ran; None if none ran."
    )
    status: ResultStatus
    complete: bool = Field(
        default=True,
        description="False when a step used its default (or optional null) or was cut short.",
    )
    data: Any = Field(default=None, description="The composed result; None when failed.")
    steps: list[StepSummary] = Field(default_factory=list)
    errors: list[ErrorDetail] = Field(default_factory=list)
    started_at_ms: int
    finished_at_ms: int
