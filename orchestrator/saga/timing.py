"""When each call and each undo began and ended: the result's ``call_timeline``.

Times are the events' own ``at_ms`` (the core reads no clock), so a replayed saga
has the same times as the one that ran. Only the first
:data:`~contracts.events.MAX_TIMED_CALLS_PER_STEP` calls of a step are timed: a
``for_each`` over 10,000 items costs two short lists, not 20,000 numbers.

A step keeps its times in one flat list, ``[begin0, end0, begin1, end1, ...]``
(epoch ms, :data:`UNSET` until known): one object per step, not two per call.
"""

from __future__ import annotations

from typing import Any

from contracts.events import MAX_TIMED_CALLS_PER_STEP
from orchestrator.saga.state import (
    CANCELLED,
    FAILED,
    QUEUED,
    SUCCEEDED,
    UNDO_DONE,
    UNDO_FAILED,
    UNDO_NONE,
    SagaState,
    StepProgress,
)

UNSET = -1
_UNDO_OUTCOMES = {UNDO_DONE: "ok", UNDO_FAILED: "failed"}


def new_times(calls: int) -> list[int]:
    """Room for the times of a step's timed calls (the first ones of ``calls``)."""
    return [UNSET] * (2 * min(calls, MAX_TIMED_CALLS_PER_STEP))


def began(times: list[int] | None, slot: int, now_ms: int) -> None:
    """Call (or undo) ``slot`` began at ``now_ms``; a later begin (a retry) keeps the first."""
    if times is not None and 2 * slot < len(times) and times[2 * slot] == UNSET:
        times[2 * slot] = now_ms


def ended(times: list[int] | None, slot: int, now_ms: int) -> None:
    """Call (or undo) ``slot`` became final at ``now_ms`` (a call never sent keeps no begin)."""
    if times is not None and 2 * slot < len(times):
        times[2 * slot + 1] = now_ms


def withdrawn(times: list[int] | None, slot: int, now_ms: int) -> None:
    """Call ``slot`` was withdrawn before its first attempt left: it never began, and
    became final (cancelled) at ``now_ms``."""
    if times is not None and 2 * slot < len(times):
        times[2 * slot] = UNSET
        times[2 * slot + 1] = now_ms


def call_timeline(
    state: SagaState,
    progress: StepProgress,
    call_ids: list[str],
    *,
    codes: dict[str, tuple[str | None, str | None]],
    budget: int,
) -> list[dict[str, Any]]:
    """The :class:`contracts.CallTiming` dicts of a step's timed calls, at most ``budget``.

    ``call_ids`` names the timed slots in order; ``codes`` is :func:`error_codes`.
    """
    times = progress.times
    if not times or budget <= 0:
        return []
    entries = []
    for slot, call in enumerate(call_ids[: min(len(times) // 2, budget)]):
        code = progress.calls[slot]
        forward_code, undo_code = codes.get(call, (None, None))
        entries.append(
            {
                "call": call,
                "started_ms": _offset(state, times[2 * slot]),
                "finished_ms": _offset(state, times[2 * slot + 1]),
                "attempts": progress.attempts[slot],
                "outcome": _outcome(code, forward_code),
                "error_code": forward_code,
                "compensation": _compensation(state, progress, slot, undo_code),
            }
        )
    return entries


def _offset(state: SagaState, at_ms: int) -> int | None:
    return None if at_ms == UNSET else at_ms - state.started_ms


def _outcome(code: int, error_code: str | None) -> str:
    if code == SUCCEEDED:
        return "ok"
    if code == FAILED:
        return "timed_out" if error_code == "step.timeout" else "failed"
    if code == CANCELLED:
        return "cancelled"
    if code == QUEUED:
        return "not_run"
    return "running"


def _compensation(
    state: SagaState, progress: StepProgress, slot: int, error_code: str | None
) -> dict[str, Any] | None:
    undo, times = progress.undo, progress.undo_times
    if undo is None or progress.undo_attempts is None or undo[slot] == UNDO_NONE:
        return None
    begin, end = (UNSET, UNSET) if times is None else (times[2 * slot], times[2 * slot + 1])
    outcome = _UNDO_OUTCOMES.get(undo[slot], "running")
    return {
        "started_ms": _offset(state, begin),
        "finished_ms": _offset(state, end),
        "attempts": progress.undo_attempts[slot],
        "outcome": outcome,
        "error_code": error_code,
    }


def error_codes(state: SagaState) -> dict[str, tuple[str | None, str | None]]:
    """Each call's last forward error code and last compensation error code."""
    found: dict[str, tuple[str | None, str | None]] = {}
    for error in state.errors:
        call = error.get("call")
        if call is None:
            continue
        forward, undo = found.get(call, (None, None))
        if error["code"].startswith("compensation."):
            undo = error["code"]
        else:
            forward = error["code"]
        found[call] = (forward, undo)
    return found
