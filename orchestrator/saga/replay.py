"""Rebuild a saga from its recorded events (pure, no I/O): what a restore resumes from.

The saga core is deterministic: given the flow, the request and the same events
(each carrying its own time), it reaches the same state and asks for the same
actions. The changelog therefore records the request and every event that changed
the saga; replaying them through :func:`~orchestrator.saga.decide` gives back the
state, and the actions of the replay tell what is still outstanding:

- calls dispatched and not answered (re-issued with the same correlation id and
  idempotency key, so a downstream that honours the key performs them once);
- retry backoffs and the flow deadline (re-armed at the same epoch time);
- the result, if the last recorded event finished the saga but the shell had not
  yet recorded that the result was published.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.flow import CompiledFlow
from orchestrator.saga.core import decide, start_saga
from orchestrator.saga.messages import ArmTimer, DispatchCall, PublishResult, SagaAction, SagaEvent
from orchestrator.saga.state import (
    IN_FLIGHT,
    UNDO_IN_FLIGHT,
    UNDO_SUFFIX,
    SagaState,
    parse_call_id,
)


@dataclass(slots=True)
class Replayed:
    """A saga rebuilt from its events."""

    state: SagaState
    result: dict[str, Any] | None = None
    """The result, if the recorded events finished the saga."""
    calls: list[tuple[DispatchCall, int]] = field(default_factory=list)
    """Attempts still in flight, each with the time it was dispatched."""
    timers: list[ArmTimer] = field(default_factory=list)
    """Timers still armed (retry backoffs, the flow deadline)."""


def replay(
    flow: CompiledFlow,
    *,
    request_id: str,
    input: dict[str, Any],
    started_ms: int,
    events: Iterable[SagaEvent],
) -> Replayed:
    """Start the saga as it started and apply ``events`` in order."""
    state, actions = start_saga(flow, request_id=request_id, input=input, now_ms=started_ms)
    calls: dict[str, tuple[DispatchCall, int]] = {}
    timers: dict[tuple[str, str], ArmTimer] = {}
    replayed = Replayed(state=state)
    _note(actions, started_ms, calls, timers, replayed)
    for event in events:
        _, actions = decide(flow, state, event)
        _note(actions, event.at_ms, calls, timers, replayed)
    replayed.calls = [
        (call, at_ms) for call, at_ms in calls.values() if attempt_in_flight(state, call)
    ]
    replayed.timers = list(timers.values())
    return replayed


def _note(
    actions: list[SagaAction],
    at_ms: int,
    calls: dict[str, tuple[DispatchCall, int]],
    timers: dict[tuple[str, str], ArmTimer],
    replayed: Replayed,
) -> None:
    for action in actions:
        if isinstance(action, DispatchCall):
            calls[action.call] = (action, at_ms)
        elif isinstance(action, ArmTimer):
            timers[(action.kind, action.call)] = action
        elif isinstance(action, PublishResult):
            replayed.result = action.result


def attempt_in_flight(state: SagaState, call: DispatchCall) -> bool:
    """Whether ``call``'s attempt is still awaited by the saga (forward or undo)."""
    undo = call.call.endswith(UNDO_SUFFIX)
    step_name, index = parse_call_id(call.call[: -len(UNDO_SUFFIX)] if undo else call.call)
    progress = state.steps.get(step_name)
    slot = index or 0
    if progress is None:
        return False
    if undo:
        return (
            progress.undo is not None
            and progress.undo_attempts is not None
            and progress.undo[slot] == UNDO_IN_FLIGHT
            and progress.undo_attempts[slot] == call.attempt
        )
    return progress.calls[slot] == IN_FLIGHT and progress.attempts[slot] == call.attempt
