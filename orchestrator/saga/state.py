"""Saga state: plain, slotted, serialisable values (no callbacks, no I/O handles).

A saga's state is everything needed to carry on after a restart: the request, the
progress of each step and of each of its calls (attempts, answers, undo), the
outputs so far and the errors. It is built to be appended to a changelog and
restored from it.

Per-call progress lives in parallel lists indexed by the call's slot (its
``for_each`` index, or 0), with counters kept alongside, so that no event costs
a scan over a step's calls: a ``for_each`` of 10,000 items stays O(n) in all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

SagaStatus = Literal["running", "compensating", "completed", "failed", "compensation_failed"]
"""``compensating``: the saga has failed; it waits for calls in flight, then undoes
what succeeded, and only then publishes its result."""
StepStatus = Literal["waiting", "running", "ok", "partial", "failed", "timed_out", "skipped"]

# What one call is doing (``StepProgress.calls``).
QUEUED = 0
"""Not sent yet: held back by the step's ``concurrency``."""
IN_FLIGHT = 1
"""An attempt is out; its answer or timeout is awaited."""
BACKOFF = 2
"""An attempt failed; the next one waits for its retry timer."""
SUCCEEDED = 3
FAILED = 4
"""Failed for good (it yielded the step's default, or failed the saga)."""
CANCELLED = 5
"""Never finished: the saga failed while it was queued or waiting to retry."""
SHARED = 6
"""An identical call of this saga is in flight; this one takes its answer."""

# What the undo of one call is doing (``StepProgress.undo``).
UNDO_NONE = 0
UNDO_PENDING = 1
UNDO_IN_FLIGHT = 2
UNDO_BACKOFF = 3
UNDO_DONE = 4
UNDO_FAILED = 5

UNDO_SUFFIX = "~undo"
"""A compensation's call id is the undone call's id plus this suffix."""


@dataclass(slots=True)
class StepProgress:
    """How far one step and each of its calls have got."""

    status: StepStatus = "waiting"
    items: list[Any] | None = None
    inputs: list[Any] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)
    calls: list[int] = field(default_factory=list)
    attempts: list[int] = field(default_factory=list)
    open: int = 0
    """Calls not yet final (queued, shared, in flight or backing off)."""
    busy: int = 0
    """Calls that hold a ``concurrency`` slot (in flight, shared or backing off)."""
    next_queued: int = 0
    """The first slot that has not been sent yet."""
    keys: list[str | None] | None = None
    """Each call's identity (service, operation, input) if it was sent as the first
    of identical calls; None for steps that never share calls."""
    failed: int = 0
    timeouts: int = 0
    """Failed calls whose last attempt timed out."""
    defaulted: int = 0
    cancelled: int = 0
    attempts_made: int = 0
    started_ms: int | None = None
    finished_ms: int | None = None
    started_seq: int = 0
    done_seq: int = 0
    """Saga event counter when the step began, and when its last call succeeded;
    compensations run in the reverse of this order."""
    undo: list[int] | None = None
    undo_attempts: list[int] | None = None
    undo_open: int = 0
    undo_begun: bool = False
    compensated: int = 0
    compensation_failed: int = 0
    times: list[int] | None = None
    """When the first calls began and ended, for the result's ``call_timeline``
    (see :mod:`~orchestrator.saga.timing`); ``undo_times`` the same for their undo."""
    undo_times: list[int] | None = None

    @property
    def pending(self) -> int:
        """Calls dispatched (or queued) and not yet final."""
        return self.open


@dataclass(slots=True)
class SagaState:
    """The state of one request's saga."""

    request_id: str
    flow: str
    input: dict[str, Any]
    started_ms: int
    flow_version: int = 1
    status: SagaStatus = "running"
    steps: dict[str, StepProgress] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    finished_ms: int | None = None
    unfinished_steps: int = 0
    """Steps neither finished nor skipped; the saga completes when it reaches 0."""
    in_flight: int = 0
    """Attempts out (forward and undo); a failing saga waits for them to end."""
    seq: int = 0
    complete: bool = True
    shared_calls: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    """Identical calls in flight, by key: the first is the one sent, the others wait."""
    shared_answers: dict[str, Any] = field(default_factory=dict)
    """Raw answers of finished identical calls, by key, for calls made later."""
    undo_started: bool = False


def call_id(step: str, index: int | None) -> str:
    """The id of one call: the step name, or ``<step>#<index>`` in a for_each."""
    return step if index is None else f"{step}#{index}"


def parse_call_id(call: str) -> tuple[str, int | None]:
    """Split a call id into the step name and the for_each index (or None)."""
    step, separator, index = call.partition("#")
    if not separator:
        return step, None
    return step, int(index)


def correlation_id(request_id: str, call: str, attempt: int) -> str:
    """Deterministic id of one attempt of one call: ``<request id>:<call>:<attempt>``."""
    return f"{request_id}:{call}:{attempt}"


def parse_correlation_id(value: str) -> tuple[str, str, int]:
    """Split a correlation id into request id, call id and attempt.

    Raises:
        ValueError: the value is not of the form ``<request id>:<call>:<attempt>``.
    """
    # Split from the right: request ids may contain ':', call ids may not.
    request_id, call, attempt = value.rsplit(":", 2)
    if not request_id or not call:
        raise ValueError(f"malformed correlation id {value!r}")
    return request_id, call, int(attempt)
