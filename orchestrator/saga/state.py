"""Saga state: plain, slotted, serialisable values (no callbacks, no I/O handles).

A saga's state is everything needed to carry on after a restart: the request, the
progress of each step, the outputs so far and the errors. It is built to be
appended to a changelog and restored from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

SagaStatus = Literal["running", "completed", "failed"]
StepStatus = Literal["waiting", "running", "ok", "partial", "failed"]


@dataclass(slots=True)
class StepProgress:
    """How far one step has got.

    ``results[i]`` is the (mapped) output of call ``i``; ``done[i]`` says whether
    call ``i`` has been answered (or timed out), so a duplicate reply or a late
    timeout is recognised and ignored.
    """

    status: StepStatus = "waiting"
    items: list[Any] | None = None
    results: list[Any] = field(default_factory=list)
    done: list[bool] = field(default_factory=list)
    attempts: list[int] = field(default_factory=list)
    failed: int = 0
    started_ms: int | None = None
    finished_ms: int | None = None

    @property
    def pending(self) -> int:
        """Calls dispatched and not yet answered."""
        return self.done.count(False)


@dataclass(slots=True)
class SagaState:
    """The state of one request's saga."""

    request_id: str
    flow: str
    input: dict[str, Any]
    started_ms: int
    status: SagaStatus = "running"
    steps: dict[str, StepProgress] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    finished_ms: int | None = None


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
