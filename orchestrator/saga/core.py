"""The saga core: a pure decision ``(flow, state, event) -> (state, actions)``.

Nothing here touches Kafka, HTTP, clocks or randomness: time arrives inside the
events, and the effects leave as :mod:`~orchestrator.saga.messages` actions for
the runtime shell to carry out. The state object passed in is updated in place
and returned; the caller owns it and must not share it between sagas.

Guarantees encoded here:
- a step starts only when every step it depends on has finished;
- each call is answered at most once: a duplicate reply, a reply for an old
  attempt or a timeout after the reply is ignored;
- the saga publishes exactly one result, after which every event is ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orchestrator.expressions import EvaluationError
from orchestrator.flow import CompiledFlow, CompiledStep
from orchestrator.saga.messages import (
    CallReplied,
    CallTimedOut,
    DispatchCall,
    PublishResult,
    SagaAction,
    SagaEvent,
)
from orchestrator.saga.result import completed_result, failed_result, step_error
from orchestrator.saga.state import SagaState, StepProgress, call_id, correlation_id, parse_call_id

Decision = tuple[SagaState, list[SagaAction]]

FIRST_ATTEMPT = 1


def start_saga(
    flow: CompiledFlow, *, request_id: str, input: dict[str, Any], now_ms: int
) -> Decision:
    """Begin a saga for a validated request: dispatch every step with no dependency."""
    state = SagaState(
        request_id=request_id,
        flow=flow.name,
        input=input,
        started_ms=now_ms,
        steps={step.name: StepProgress() for step in flow.steps},
    )
    actions: list[SagaAction] = []
    _advance(flow, state, now_ms=now_ms, actions=actions)
    return state, actions


def decide(flow: CompiledFlow, state: SagaState, event: SagaEvent) -> Decision:
    """Apply one event to a running saga and return what to do next."""
    if state.status != "running":
        return state, []
    try:
        step_name, index = parse_call_id(event.call)
    except ValueError:
        return state, []  # not a call id this saga could have made
    progress = state.steps.get(step_name)
    slot = 0 if index is None else index
    if (
        progress is None
        or slot < 0
        or progress.status != "running"
        or slot >= len(progress.done)
        or progress.done[slot]
        or progress.attempts[slot] != event.attempt
    ):
        return state, []
    step = flow.step(step_name)
    progress.done[slot] = True
    actions: list[SagaAction] = []
    if isinstance(event, CallReplied) and event.status == "ok":
        _call_succeeded(flow, state, step, progress, slot=slot, event=event, actions=actions)
        return state, actions
    if isinstance(event, CallTimedOut):
        failure = step_error(
            "step.timeout",
            f"no reply from {step.service}.{step.operation} within {step.timeout_ms} ms",
            step=step.name,
            call=event.call,
        )
    else:
        failure = step_error(
            f"step.{event.status}",
            f"{step.service}.{step.operation} failed: {event.error_message or event.error_code}",
            step=step.name,
            call=event.call,
            adapter_code=event.error_code,
        )
    _call_failed(
        flow,
        state,
        step,
        progress,
        slot=slot,
        failure=failure,
        now_ms=event.at_ms,
        actions=actions,
    )
    return state, actions


def _call_succeeded(
    flow: CompiledFlow,
    state: SagaState,
    step: CompiledStep,
    progress: StepProgress,
    *,
    slot: int,
    event: CallReplied,
    actions: list[SagaAction],
) -> None:
    output = event.output
    if step.output is not None:
        context = _context(state, progress.items, slot)
        context["reply"] = output
        try:
            output = step.output.evaluate(context)
        except EvaluationError as error:
            failure = step_error("step.output_error", str(error), step=step.name, call=event.call)
            _call_failed(
                flow,
                state,
                step,
                progress,
                slot=slot,
                failure=failure,
                now_ms=event.at_ms,
                actions=actions,
            )
            return
    progress.results[slot] = output
    _after_call(flow, state, step, progress, now_ms=event.at_ms, actions=actions)


def _call_failed(
    flow: CompiledFlow,
    state: SagaState,
    step: CompiledStep,
    progress: StepProgress,
    *,
    slot: int,
    failure: dict[str, Any],
    now_ms: int,
    actions: list[SagaAction],
) -> None:
    progress.failed += 1
    state.errors.append(failure)
    if not step.optional:
        progress.status = "failed"
        progress.finished_ms = now_ms
        _finish(
            flow, state, failed_result(flow, state, now_ms=now_ms), now_ms=now_ms, actions=actions
        )
        return
    # An optional step's failed call yields null and the saga carries on.
    progress.results[slot] = None
    _after_call(flow, state, step, progress, now_ms=now_ms, actions=actions)


def _after_call(
    flow: CompiledFlow,
    state: SagaState,
    step: CompiledStep,
    progress: StepProgress,
    *,
    now_ms: int,
    actions: list[SagaAction],
) -> None:
    if progress.pending:
        return
    _complete_step(state, step, progress, now_ms=now_ms)
    _advance(flow, state, now_ms=now_ms, actions=actions)


def _complete_step(
    state: SagaState, step: CompiledStep, progress: StepProgress, *, now_ms: int
) -> None:
    calls = len(progress.done)
    if progress.failed == 0:
        progress.status = "ok"
    else:
        progress.status = "failed" if progress.failed == calls else "partial"
    progress.finished_ms = now_ms
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
                state.steps[dependency].status in ("ok", "partial", "failed")
                for dependency in step.depends_on
            ):
                continue
            if not _start_step(flow, state, step, progress, now_ms=now_ms, actions=actions):
                return
            # A step with no calls (empty for_each) finished at once: look again.
            progressed = progressed or state.steps[step.name].status != "running"
    if state.status == "running" and all(
        progress.status in ("ok", "partial", "failed") for progress in state.steps.values()
    ):
        _finish(
            flow,
            state,
            completed_result(flow, state, now_ms=now_ms),
            now_ms=now_ms,
            actions=actions,
        )


def _start_step(
    flow: CompiledFlow,
    state: SagaState,
    step: CompiledStep,
    progress: StepProgress,
    *,
    now_ms: int,
    actions: list[SagaAction],
) -> bool:
    """Dispatch the step's calls; returns False if the saga failed instead."""
    context = _context(state, None, 0)
    try:
        items = _items(step, context)
        inputs = [
            step.input.evaluate(context if items is None else _with_item(context, items, index))
            for index in range(1 if items is None else len(items))
        ]
    except EvaluationError as error:
        failure = step_error("step.input_error", str(error), step=step.name)
        state.errors.append(failure)
        progress.status = "failed"
        _finish(
            flow, state, failed_result(flow, state, now_ms=now_ms), now_ms=now_ms, actions=actions
        )
        return False
    progress.status = "running"
    progress.started_ms = now_ms
    progress.items = items
    progress.results = [None] * len(inputs)
    progress.done = [False] * len(inputs)
    progress.attempts = [FIRST_ATTEMPT] * len(inputs)
    if not inputs:
        # for_each over an empty list: the step is done with an empty output.
        _complete_step(state, step, progress, now_ms=now_ms)
        return True
    for index, call_input in enumerate(inputs):
        call = call_id(step.name, None if items is None else index)
        actions.append(
            DispatchCall(
                request_id=state.request_id,
                flow=flow.name,
                step=step.name,
                call=call,
                attempt=FIRST_ATTEMPT,
                service=step.service,
                operation=step.operation,
                input=call_input,
                deadline_ms=now_ms + step.timeout_ms,
                correlation_id=correlation_id(state.request_id, call, FIRST_ATTEMPT),
                # The same for every attempt of this call, so a downstream that
                # honours idempotency keys performs it at most once.
                idempotency_key=f"{state.request_id}:{call}",
            )
        )
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
    return items


def _context(state: SagaState, items: Sequence[Any] | None, index: int) -> dict[str, Any]:
    context: dict[str, Any] = dict(state.outputs)
    context["input"] = state.input
    if items is not None:
        context["item"] = items[index]
        context["index"] = index
    return context


def _with_item(context: dict[str, Any], items: Sequence[Any], index: int) -> dict[str, Any]:
    scoped = dict(context)
    scoped["item"] = items[index]
    scoped["index"] = index
    return scoped


def _finish(
    flow: CompiledFlow,
    state: SagaState,
    result: dict[str, Any],
    *,
    now_ms: int,
    actions: list[SagaAction],
) -> None:
    state.status = result["status"]
    state.finished_ms = now_ms
    # Calls decided in this same step but not yet carried out are dropped: the
    # request is over, nobody should be called for it any more.
    actions[:] = [action for action in actions if not isinstance(action, DispatchCall)]
    actions.append(PublishResult(result=result))
