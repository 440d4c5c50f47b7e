"""How a saga fails: stop, drain, undo, and publish one result.

When a saga fails (a required step failed for good, its deadline passed, a
mapping failed), it:

1. sends no new forward call: calls queued behind ``concurrency``, calls waiting
   to retry and calls waiting on an identical one are cancelled;
2. waits for the attempts still in flight (each is bounded by its own timeout),
   so a call that succeeds late is undone too;
3. undoes every call that succeeded, of every step with a ``compensate``, in the
   reverse order of completion: a step is undone only after every step that
   began after it finished has been undone; steps that ran side by side are
   undone side by side, and the calls of one ``for_each`` step concurrently;
4. publishes the result: ``failed``, or ``compensation_failed`` if an undo failed
   for good (its error names the call and why). Nothing is dropped silently.

A call whose last attempt timed out has an unknown outcome and no output to undo
from; it is reported (``step.timeout``) and not compensated.
"""

from __future__ import annotations

from typing import Any

from orchestrator.expressions import EvaluationError
from orchestrator.flow import CompiledFlow, CompiledStep
from orchestrator.saga import timing
from orchestrator.saga.messages import (
    ArmTimer,
    CallReplied,
    CallTimedOut,
    DispatchCall,
    PublishResult,
    RetryDue,
    SagaAction,
)
from orchestrator.saga.result import build_result, step_error
from orchestrator.saga.scope import call_id_of, call_scope, ignore
from orchestrator.saga.state import (
    BACKOFF,
    CANCELLED,
    QUEUED,
    SHARED,
    SUCCEEDED,
    UNDO_BACKOFF,
    UNDO_DONE,
    UNDO_FAILED,
    UNDO_IN_FLIGHT,
    UNDO_NONE,
    UNDO_PENDING,
    UNDO_SUFFIX,
    SagaState,
    StepProgress,
    correlation_id,
    parse_call_id,
)

_STOPPED = frozenset({QUEUED, BACKOFF, SHARED})


def fail_saga(
    flow: CompiledFlow, state: SagaState, *, now_ms: int, actions: list[SagaAction]
) -> None:
    """Stop forward work; compensate once nothing is in flight. ``state.errors`` says why."""
    state.status = "compensating"
    state.complete = False
    _withdraw_unsent(state, actions, now_ms=now_ms)
    for step in flow.steps:
        progress = state.steps[step.name]
        if progress.status != "running":
            continue
        for slot, code in enumerate(progress.calls):
            if code in _STOPPED:
                timing.ended(progress.times, slot, now_ms)
                progress.calls[slot] = CANCELLED
                progress.cancelled += 1
                progress.open -= 1
    after_call(flow, state, now_ms=now_ms, actions=actions)


def _withdraw_unsent(state: SagaState, actions: list[SagaAction], *, now_ms: int) -> None:
    # Calls decided in this same decision have not left yet: they are not sent
    # at all (no one should be called for a failed request), so they are
    # cancelled rather than awaited.
    kept: list[SagaAction] = []
    for action in actions:
        if isinstance(action, DispatchCall) and not action.call.endswith(UNDO_SUFFIX):
            step, index = parse_call_id(action.call)
            progress = state.steps[step]
            slot = 0 if index is None else index
            progress.calls[slot] = CANCELLED
            progress.cancelled += 1
            progress.open -= 1
            progress.attempts_made -= 1
            # This attempt never left: the call's count of attempts says so too.
            progress.attempts[slot] -= 1
            if progress.attempts[slot] == 0:
                timing.withdrawn(progress.times, slot, now_ms)
            else:
                # A retry withdrawn: the call began with its first attempt.
                timing.ended(progress.times, slot, now_ms)
            state.in_flight -= 1
            continue
        if isinstance(action, ArmTimer) and action.kind == "retry":
            continue
        kept.append(action)
    actions[:] = kept


def after_call(
    flow: CompiledFlow, state: SagaState, *, now_ms: int, actions: list[SagaAction]
) -> None:
    """A failing saga's call (or undo) ended: undo what is ready, or finish."""
    if state.in_flight > 0:
        return
    if not state.undo_started:
        state.undo_started = True
        _plan_undo(flow, state)
    if _start_ready_undos(flow, state, now_ms=now_ms, actions=actions):
        return
    if state.in_flight == 0 and not any(
        state.steps[step.name].undo_open for step in flow.steps if step.compensation
    ):
        failed_undo = any(progress.compensation_failed for progress in state.steps.values())
        finish(
            flow,
            state,
            status="compensation_failed" if failed_undo else "failed",
            data=None,
            now_ms=now_ms,
            actions=actions,
        )


def _plan_undo(flow: CompiledFlow, state: SagaState) -> None:
    for step in flow.steps:
        progress = state.steps[step.name]
        if step.compensation is None or not progress.calls:
            continue
        undo = [UNDO_PENDING if code == SUCCEEDED else UNDO_NONE for code in progress.calls]
        progress.undo_open = undo.count(UNDO_PENDING)
        if progress.undo_open:
            progress.undo = undo
            progress.undo_attempts = [0] * len(undo)
            progress.undo_times = timing.new_times(len(undo))


def _start_ready_undos(
    flow: CompiledFlow, state: SagaState, *, now_ms: int, actions: list[SagaAction]
) -> bool:
    """Start the undo of every step nothing later blocks; True if any undo is under way."""
    undoing = [
        (step, state.steps[step.name])
        for step in flow.steps
        if step.compensation is not None and state.steps[step.name].undo_open
    ]
    if not undoing:
        return False
    not_begun = [(step, progress) for step, progress in undoing if not _begun(progress)]
    started = False
    for step, progress in not_begun:
        # A step that began once this one had finished may have used its output:
        # it is undone first.
        if any(
            other is not progress and other.started_seq >= progress.done_seq for _, other in undoing
        ):
            continue
        _begin_undo(flow, state, step, progress, now_ms=now_ms, actions=actions)
        started = True
    if not started and len(not_begun) == len(undoing):
        # Nothing under way and everything blocked cannot happen with a
        # consistent order; never wait forever: undo the latest first.
        step, progress = max(not_begun, key=lambda pair: pair[1].done_seq)
        _begin_undo(flow, state, step, progress, now_ms=now_ms, actions=actions)
    return True


def _begun(progress: StepProgress) -> bool:
    return progress.undo_begun


def _begin_undo(
    flow: CompiledFlow,
    state: SagaState,
    step: CompiledStep,
    progress: StepProgress,
    *,
    now_ms: int,
    actions: list[SagaAction],
) -> None:
    assert progress.undo is not None
    progress.undo_begun = True
    for slot, code in enumerate(progress.undo):
        if code == UNDO_PENDING:
            _send_undo(flow, state, step, progress, slot, attempt=1, now_ms=now_ms, actions=actions)


def _send_undo(
    flow: CompiledFlow,
    state: SagaState,
    step: CompiledStep,
    progress: StepProgress,
    slot: int,
    *,
    attempt: int,
    now_ms: int,
    actions: list[SagaAction],
) -> None:
    undo = step.compensation
    assert undo is not None
    assert progress.undo is not None
    assert progress.undo_attempts is not None
    target = call_id_of(step, slot)
    context = call_scope(state, progress.items, slot)
    # The compensation reads the step's own output by its name: for a for_each
    # step, the output of the one call it undoes.
    context[step.name] = progress.results[slot]
    timing.began(progress.undo_times, slot, now_ms)
    try:
        payload = undo.input.evaluate(context)
    except EvaluationError as error:
        _undo_failed(
            state,
            step,
            progress,
            slot,
            code="compensation.input_error",
            message=f"the compensation input of {target} failed: {error}",
            now_ms=now_ms,
        )
        return
    progress.undo[slot] = UNDO_IN_FLIGHT
    progress.undo_attempts[slot] = attempt
    state.in_flight += 1
    call = target + UNDO_SUFFIX
    actions.append(
        DispatchCall(
            request_id=state.request_id,
            flow=flow.name,
            step=step.name,
            call=call,
            attempt=attempt,
            service=undo.service,
            operation=undo.operation,
            input=payload,
            deadline_ms=now_ms + undo.timeout_ms,
            correlation_id=correlation_id(state.request_id, call, attempt),
            idempotency_key=f"{state.request_id}:{target}:compensate",
        )
    )


def on_undo_event(
    flow: CompiledFlow,
    state: SagaState,
    event: CallReplied | CallTimedOut | RetryDue,
    *,
    step: CompiledStep,
    progress: StepProgress,
    slot: int,
    actions: list[SagaAction],
) -> None:
    """An undo call answered, timed out, or may be retried."""
    undo, attempts = progress.undo, progress.undo_attempts
    compensation = step.compensation
    if undo is None or attempts is None or compensation is None:
        ignore(event, "unknown_call", actions)
        return
    if isinstance(event, RetryDue):
        if undo[slot] == UNDO_BACKOFF and event.attempt == attempts[slot] + 1:
            _send_undo(
                flow,
                state,
                step,
                progress,
                slot,
                attempt=event.attempt,
                now_ms=event.at_ms,
                actions=actions,
            )
        return
    if undo[slot] != UNDO_IN_FLIGHT or attempts[slot] != event.attempt:
        ignore(
            event, "old_attempt" if attempts[slot] != event.attempt else "finished_call", actions
        )
        return
    state.in_flight -= 1
    attempt = attempts[slot]
    if isinstance(event, CallReplied) and event.status == "ok":
        undo[slot] = UNDO_DONE
        timing.ended(progress.undo_times, slot, event.at_ms)
        progress.compensated += 1
        progress.undo_open -= 1
    else:
        reply = event if isinstance(event, CallReplied) else None
        retryable = reply is None or reply.status == "technical_error"
        if retryable and attempt < compensation.retry.attempts:
            wait_ms = compensation.retry.backoff_ms_after(
                attempt,
                correlation_id=correlation_id(state.request_id, event.call, attempt),
                retry_after_ms=None if reply is None else reply.retry_after_ms,
            )
            undo[slot] = UNDO_BACKOFF
            actions.append(
                ArmTimer(
                    kind="retry", at_ms=event.at_ms + wait_ms, call=event.call, attempt=attempt + 1
                )
            )
            return
        why = (
            f"no reply within {compensation.timeout_ms} ms"
            if reply is None
            else (reply.error_message or reply.error_code or reply.status)
        )
        _undo_failed(
            state,
            step,
            progress,
            slot,
            code="compensation.failed",
            message=(
                f"could not undo {call_id_of(step, slot)}: {compensation.service}."
                f"{compensation.operation} failed after {attempt} attempt(s): {why}"
            ),
            adapter_code=None if reply is None else reply.error_code,
            now_ms=event.at_ms,
        )
    after_call(flow, state, now_ms=event.at_ms, actions=actions)


def _undo_failed(
    state: SagaState,
    step: CompiledStep,
    progress: StepProgress,
    slot: int,
    *,
    code: str,
    message: str,
    now_ms: int,
    adapter_code: str | None = None,
) -> None:
    assert progress.undo is not None
    progress.undo[slot] = UNDO_FAILED
    timing.ended(progress.undo_times, slot, now_ms)
    progress.compensation_failed += 1
    progress.undo_open -= 1
    state.errors.append(
        step_error(
            code, message, step=step.name, call=call_id_of(step, slot), adapter_code=adapter_code
        )
    )


def finish(
    flow: CompiledFlow,
    state: SagaState,
    *,
    status: str,
    data: Any,
    now_ms: int,
    actions: list[SagaAction],
) -> None:
    """End the saga with its one result."""
    state.status = status  # type: ignore[assignment]
    state.finished_ms = now_ms
    actions.append(
        PublishResult(result=build_result(flow, state, status=status, data=data, now_ms=now_ms))
    )
