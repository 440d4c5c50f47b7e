"""The saga core: a pure decision ``(flow, state, event) -> (state, actions)``.

Nothing here touches Kafka, HTTP, clocks or randomness: time arrives inside the
events, retry jitter is a hash of the attempt's correlation id, and the effects
leave as :mod:`~orchestrator.saga.messages` actions for the runtime shell to
carry out. The state object passed in is updated in place and returned; the
caller owns it and must not share it between sagas.

Guarantees encoded here:
- a step starts only when every step it depends on has finished (or was skipped);
- each attempt of a call is answered at most once: a duplicate reply, a reply for
  an old attempt or a timeout after the reply is ignored (and reported as
  :class:`EventIgnored` when it was a reply);
- a failed attempt is retried only if it may succeed (a technical error or a
  timeout) and attempts are left; a business error is final;
- once the saga fails no forward call is sent; it waits for the calls in flight,
  undoes what succeeded (:mod:`~orchestrator.saga.compensation`), and only then
  publishes its result;
- the saga publishes exactly one result, after which every event is ignored.
"""

from __future__ import annotations

from typing import Any

import orjson

from orchestrator.expressions import EvaluationError
from orchestrator.flow import CompiledFlow, CompiledStep
from orchestrator.limits import current_limits
from orchestrator.saga import compensation, timing
from orchestrator.saga.messages import (
    ArmTimer,
    CallReplied,
    CallTimedOut,
    DispatchCall,
    RetryDue,
    SagaAction,
    SagaDeadlinePassed,
    SagaEvent,
)
from orchestrator.saga.result import compose_data, step_error
from orchestrator.saga.scope import call_id_of, call_scope, ignore, with_item
from orchestrator.saga.state import (
    BACKOFF,
    FAILED,
    IN_FLIGHT,
    QUEUED,
    SHARED,
    SUCCEEDED,
    UNDO_SUFFIX,
    SagaState,
    StepProgress,
    correlation_id,
    parse_call_id,
)

Decision = tuple[SagaState, list[SagaAction]]

FIRST_ATTEMPT = 1
_FINISHED_STEP = frozenset({"ok", "partial", "failed", "timed_out", "skipped"})


def start_saga(
    flow: CompiledFlow, *, request_id: str, input: dict[str, Any], now_ms: int
) -> Decision:
    """Begin a saga for a validated request: dispatch every step with no dependency."""
    state = SagaState(
        request_id=request_id,
        flow=flow.name,
        input=input,
        started_ms=now_ms,
        flow_version=flow.version,
        steps={step.name: StepProgress() for step in flow.steps},
        unfinished_steps=len(flow.steps),
    )
    actions: list[SagaAction] = []
    if flow.deadline_ms is not None:
        actions.append(ArmTimer(kind="saga_deadline", at_ms=now_ms + flow.deadline_ms))
    _advance(flow, state, now_ms=now_ms, actions=actions)
    return state, actions


def decide(flow: CompiledFlow, state: SagaState, event: SagaEvent) -> Decision:
    """Apply one event to a running saga and return what to do next."""
    actions: list[SagaAction] = []
    if state.status not in ("running", "compensating"):
        ignore(event, "finished_saga", actions)
        return state, actions
    state.seq += 1
    if isinstance(event, SagaDeadlinePassed):
        if state.status == "running":
            state.errors.append(
                step_error(
                    "step.deadline",
                    f"flow '{flow.name}' did not finish within its deadline of "
                    f"{flow.deadline_ms} ms",
                )
            )
            compensation.fail_saga(flow, state, now_ms=event.at_ms, actions=actions)
        return state, actions
    undo = event.call.endswith(UNDO_SUFFIX)
    target = event.call[: -len(UNDO_SUFFIX)] if undo else event.call
    try:
        step_name, index = parse_call_id(target)
    except ValueError:
        ignore(event, "unknown_call", actions)
        return state, actions
    progress = state.steps.get(step_name)
    slot = 0 if index is None else index
    if progress is None or not 0 <= slot < len(progress.calls):
        ignore(event, "unknown_call", actions)
        return state, actions
    step = flow.step(step_name)
    if undo:
        compensation.on_undo_event(
            flow, state, event, step=step, progress=progress, slot=slot, actions=actions
        )
    else:
        _on_call_event(flow, state, event, step=step, progress=progress, slot=slot, actions=actions)
    return state, actions


def _on_call_event(
    flow: CompiledFlow,
    state: SagaState,
    event: CallReplied | CallTimedOut | RetryDue,
    *,
    step: CompiledStep,
    progress: StepProgress,
    slot: int,
    actions: list[SagaAction],
) -> None:
    code = progress.calls[slot]
    attempt = progress.attempts[slot]
    if isinstance(event, RetryDue):
        # A retry timer of a call that was cancelled (the saga failed) is moot.
        if code == BACKOFF and event.attempt == attempt + 1 and state.status == "running":
            send_call(
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
    if code != IN_FLIGHT or attempt != event.attempt:
        ignore(event, "old_attempt" if attempt != event.attempt else "finished_call", actions)
        return
    state.in_flight -= 1
    now_ms = event.at_ms
    if isinstance(event, CallReplied) and event.status == "ok":
        _answer(
            flow,
            state,
            step,
            progress,
            slot,
            output=event.output,
            failure=None,
            now_ms=now_ms,
            actions=actions,
        )
        return
    timed_out = isinstance(event, CallTimedOut)
    retryable = timed_out or (isinstance(event, CallReplied) and event.status == "technical_error")
    if retryable and state.status == "running" and attempt < step.retry.attempts:
        retry_after = event.retry_after_ms if isinstance(event, CallReplied) else None
        wait_ms = step.retry.backoff_ms_after(
            attempt,
            correlation_id=correlation_id(state.request_id, event.call, attempt),
            retry_after_ms=retry_after,
        )
        progress.calls[slot] = BACKOFF
        actions.append(
            ArmTimer(kind="retry", at_ms=now_ms + wait_ms, call=event.call, attempt=attempt + 1)
        )
        return
    _answer(
        flow,
        state,
        step,
        progress,
        slot,
        output=None,
        failure=_failure(step, event, attempts=attempt),
        now_ms=now_ms,
        actions=actions,
    )


def _failure(
    step: CompiledStep, event: CallReplied | CallTimedOut, *, attempts: int
) -> dict[str, Any]:
    tries = f" (after {attempts} attempts)" if attempts > 1 else ""
    if isinstance(event, CallTimedOut):
        return step_error(
            "step.timeout",
            f"no reply from {step.service}.{step.operation} within {step.timeout_ms} ms{tries}",
            step=step.name,
            call=event.call,
        )
    return step_error(
        f"step.{event.status}",
        f"{step.service}.{step.operation} failed{tries}: {event.error_message or event.error_code}",
        step=step.name,
        call=event.call,
        adapter_code=event.error_code,
    )


def _answer(
    flow: CompiledFlow,
    state: SagaState,
    step: CompiledStep,
    progress: StepProgress,
    slot: int,
    *,
    output: Any,
    failure: dict[str, Any] | None,
    now_ms: int,
    actions: list[SagaAction],
) -> None:
    """Settle a sent call for good, and every identical call that waited on it."""
    key = progress.keys[slot] if progress.keys else None
    waiting = state.shared_calls.pop(key, None) if key is not None else None
    if key is not None and failure is None:
        state.shared_answers[key] = output
    _settle(
        flow,
        state,
        step,
        progress,
        slot,
        output=output,
        failure=failure,
        now_ms=now_ms,
        actions=actions,
    )
    for other_step, other_slot in waiting or ():
        other = state.steps[other_step]
        if other.calls[other_slot] == SHARED:
            _settle(
                flow,
                state,
                flow.step(other_step),
                other,
                other_slot,
                output=output,
                failure=failure,
                now_ms=now_ms,
                actions=actions,
            )


def _settle(
    flow: CompiledFlow,
    state: SagaState,
    step: CompiledStep,
    progress: StepProgress,
    slot: int,
    *,
    output: Any,
    failure: dict[str, Any] | None,
    now_ms: int,
    actions: list[SagaAction],
    refill: bool = True,
) -> None:
    if failure is None and step.output is not None:
        context = call_scope(state, progress.items, slot)
        context["reply"] = output
        try:
            output = step.output.evaluate(context)
        except EvaluationError as error:
            failure = step_error(
                error.code or "step.output_error",
                str(error),
                step=step.name,
                call=call_id_of(step, slot),
            )
    progress.open -= 1
    progress.busy -= 1
    timing.ended(progress.times, slot, now_ms)
    if failure is None:
        progress.calls[slot] = SUCCEEDED
        progress.results[slot] = output
        progress.done_seq = state.seq
    else:
        progress.calls[slot] = FAILED
        progress.failed += 1
        progress.timeouts += failure["code"] == "step.timeout"
        state.errors.append(failure)
        if state.status == "running":
            if not step.optional:
                progress.status = "timed_out" if failure["code"] == "step.timeout" else "failed"
                progress.finished_ms = now_ms
                compensation.fail_saga(flow, state, now_ms=now_ms, actions=actions)
                return
            # The step has a default: this call yields it, and the saga carries on.
            progress.results[slot] = step.default
            progress.defaulted += 1
            state.complete = False
    if state.status != "running":
        compensation.after_call(flow, state, now_ms=now_ms, actions=actions)
    elif refill:
        _fill(flow, state, step, progress, now_ms=now_ms, actions=actions)


def _fill(
    flow: CompiledFlow,
    state: SagaState,
    step: CompiledStep,
    progress: StepProgress,
    *,
    now_ms: int,
    actions: list[SagaAction],
) -> None:
    """Send queued calls up to the step's concurrency; finish the step when all are final."""
    cap = step.concurrency
    total = len(progress.calls)
    # A loop, not recursion: calls answered at once (identical to an earlier
    # one) settle here without re-entering, so 10,000 of them cost no stack.
    while progress.next_queued < total and (cap is None or progress.busy < cap):
        slot = progress.next_queued
        progress.next_queued += 1
        progress.busy += 1
        timing.began(progress.times, slot, now_ms)
        _start_call(flow, state, step, progress, slot, now_ms=now_ms, actions=actions)
        if state.status != "running":
            return
    if progress.open == 0 and progress.status == "running":
        _complete_step(state, step, progress, now_ms=now_ms)
        _advance(flow, state, now_ms=now_ms, actions=actions)


def _start_call(
    flow: CompiledFlow,
    state: SagaState,
    step: CompiledStep,
    progress: StepProgress,
    slot: int,
    *,
    now_ms: int,
    actions: list[SagaAction],
) -> None:
    if step.shares_calls:
        key = _share_key(step, progress.inputs[slot])
        if key is not None:
            if key in state.shared_answers:
                _settle(
                    flow,
                    state,
                    step,
                    progress,
                    slot,
                    output=state.shared_answers[key],
                    failure=None,
                    now_ms=now_ms,
                    actions=actions,
                    refill=False,
                )
                return
            waiting = state.shared_calls.get(key)
            if waiting is not None:
                waiting.append((step.name, slot))
                progress.calls[slot] = SHARED
                return
            state.shared_calls[key] = []
            assert progress.keys is not None
            progress.keys[slot] = key
    send_call(
        flow, state, step, progress, slot, attempt=FIRST_ATTEMPT, now_ms=now_ms, actions=actions
    )


def _share_key(step: CompiledStep, call_input: Any) -> str | None:
    try:
        encoded = orjson.dumps(call_input, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return None
    return f"{step.service}\x00{step.operation}\x00{encoded.decode()}"


def send_call(
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
    """Dispatch one attempt of a forward call."""
    progress.calls[slot] = IN_FLIGHT
    progress.attempts[slot] = attempt
    progress.attempts_made += 1
    state.in_flight += 1
    call = call_id_of(step, slot)
    actions.append(
        DispatchCall(
            request_id=state.request_id,
            flow=flow.name,
            step=step.name,
            call=call,
            attempt=attempt,
            service=step.service,
            operation=step.operation,
            input=progress.inputs[slot],
            deadline_ms=now_ms + step.timeout_ms,
            correlation_id=correlation_id(state.request_id, call, attempt),
            # The same for every attempt and re-run of this call, so a downstream
            # that honours idempotency keys performs it at most once.
            idempotency_key=f"{state.request_id}:{call}",
        )
    )


def _complete_step(
    state: SagaState, step: CompiledStep, progress: StepProgress, *, now_ms: int
) -> None:
    calls = len(progress.calls)
    if progress.failed == 0:
        progress.status = "ok"
    elif progress.failed < calls:
        progress.status = "partial"
    else:
        progress.status = "timed_out" if progress.timeouts == calls else "failed"
    progress.finished_ms = now_ms
    state.unfinished_steps -= 1
    state.outputs[step.name] = (
        progress.results if step.for_each is not None else progress.results[0]
    )


def _advance(
    flow: CompiledFlow, state: SagaState, *, now_ms: int, actions: list[SagaAction]
) -> None:
    """Start every waiting step whose dependencies are done; finish when all are."""
    progressed = True
    while progressed and state.status == "running":
        progressed = False
        for step in flow.steps:
            progress = state.steps[step.name]
            if progress.status != "waiting" or not all(
                state.steps[dependency].status in _FINISHED_STEP for dependency in step.depends_on
            ):
                continue
            _start_step(flow, state, step, progress, now_ms=now_ms, actions=actions)
            if state.status != "running":
                return
            # A step that finished at once (skipped, empty for_each, answers
            # shared with earlier calls) may unblock others: look again.
            started: str = progress.status  # _start_step changed it
            progressed = progressed or started != "running"
    if state.status == "running" and state.unfinished_steps == 0:
        data, failure = compose_data(flow, state)
        if failure is not None:
            state.errors.append(failure)
            compensation.fail_saga(flow, state, now_ms=now_ms, actions=actions)
            return
        compensation.finish(
            flow, state, status="completed", data=data, now_ms=now_ms, actions=actions
        )


def _start_step(
    flow: CompiledFlow,
    state: SagaState,
    step: CompiledStep,
    progress: StepProgress,
    *,
    now_ms: int,
    actions: list[SagaAction],
) -> None:
    context = call_scope(state, None, 0)
    try:
        if step.when is not None and not _truthy(step.when.evaluate(context)):
            progress.status = "skipped"
            state.unfinished_steps -= 1
            state.outputs[step.name] = None
            return
    except EvaluationError as error:
        _fail_before_calls(
            flow,
            state,
            progress,
            code=error.code or "step.condition_error",
            step=step,
            message=str(error),
            now_ms=now_ms,
            actions=actions,
        )
        return
    try:
        items = _items(step, context)
        inputs = [
            step.input.evaluate(context if items is None else with_item(context, items, index))
            for index in range(1 if items is None else len(items))
        ]
    except EvaluationError as error:
        _fail_before_calls(
            flow,
            state,
            progress,
            code=error.code or "step.input_error",
            step=step,
            message=str(error),
            now_ms=now_ms,
            actions=actions,
        )
        return
    count = len(inputs)
    progress.status = "running"
    progress.started_ms = now_ms
    progress.started_seq = state.seq
    progress.items = items
    progress.inputs = inputs
    progress.results = [None] * count
    progress.calls = [QUEUED] * count
    progress.attempts = [0] * count
    progress.keys = [None] * count if step.shares_calls else None
    progress.times = timing.new_times(count)
    progress.open = count
    _fill(flow, state, step, progress, now_ms=now_ms, actions=actions)


def _fail_before_calls(
    flow: CompiledFlow,
    state: SagaState,
    progress: StepProgress,
    *,
    code: str,
    step: CompiledStep,
    message: str,
    now_ms: int,
    actions: list[SagaAction],
) -> None:
    state.errors.append(step_error(code, message, step=step.name))
    progress.status = "failed"
    progress.finished_ms = now_ms
    compensation.fail_saga(flow, state, now_ms=now_ms, actions=actions)


def _truthy(value: Any) -> bool:
    # JMESPath's truth: false, null, and empty strings, lists and objects are
    # false; every number (0 too) is true.
    if value is None or value is False:
        return False
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return True


def _items(step: CompiledStep, context: dict[str, Any]) -> list[Any] | None:
    if step.for_each is None:
        return None
    items = step.for_each.evaluate(context)
    if items is None:
        return []
    if not isinstance(items, list):
        raise EvaluationError(
            f"for_each {step.for_each.source!r} gave a {type(items).__name__}, not a list"
        )
    most = current_limits().max_for_each
    if len(items) > most:
        raise ForEachTooLongError(
            f"for_each {step.for_each.source!r} gave {len(items)} items; at most {most} "
            "calls per step are allowed (ORCH_MAX_FOR_EACH)"
        )
    return items


class ForEachTooLongError(EvaluationError):
    """A ``for_each`` gave more items than ``ORCH_MAX_FOR_EACH``: no call is made."""

    code = "step.for_each_too_long"
