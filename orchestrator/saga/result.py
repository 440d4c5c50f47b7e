"""Build result events (as plain dicts shaped like :class:`contracts.ResultEvent`).

The dicts are built here rather than through the pydantic model because this is
the hot path; ``tests/orchestrator/saga`` checks every shape against the model.
"""

from __future__ import annotations

from typing import Any

import orjson

from contracts.events import MAX_TIMED_CALLS, RESULT_SCHEMA_VERSION
from orchestrator.expressions import EvaluationError
from orchestrator.flow import CompiledFlow
from orchestrator.limits import current_limits
from orchestrator.saga import timing
from orchestrator.saga.state import SagaState, StepProgress, call_id


def step_error(
    code: str,
    message: str,
    *,
    step: str | None = None,
    call: str | None = None,
    adapter_code: str | None = None,
) -> dict[str, Any]:
    """An :class:`contracts.ErrorDetail` as a dict."""
    return {
        "code": code,
        "message": message,
        "step": step,
        "call": call,
        "adapter_code": adapter_code,
    }


def compose_data(flow: CompiledFlow, state: SagaState) -> tuple[Any, dict[str, Any] | None]:
    """Evaluate the flow's ``result`` mapping: ``(data, None)`` or ``(None, error)``."""
    context: dict[str, Any] = dict(state.outputs)
    context["input"] = state.input
    try:
        data = flow.result.evaluate(context)
    except EvaluationError as error:
        return None, step_error(error.code or "result.mapping_error", str(error))
    # Measured here, not when the result is published, so that an oversized
    # result fails the saga (and compensates) with its own code.
    try:
        size = len(orjson.dumps(data))
    except orjson.JSONEncodeError as error:
        return None, step_error("result.mapping_error", f"the result cannot be encoded: {error}")
    most = current_limits().max_result_bytes
    if size > most:
        return None, step_error(
            "result.too_large",
            f"the composed result has {size} bytes; at most {most} are allowed "
            "(ORCH_MAX_RESULT_BYTES)",
        )
    return data, None


def build_result(
    flow: CompiledFlow, state: SagaState, *, status: str, data: Any, now_ms: int
) -> dict[str, Any]:
    """The result event of a saga that has ended with ``status``."""
    steps = []
    codes = timing.error_codes(state)
    budget = MAX_TIMED_CALLS
    for step in flow.steps:
        progress = state.steps[step.name]
        duration = (
            progress.finished_ms - progress.started_ms
            if progress.finished_ms is not None and progress.started_ms is not None
            else None
        )
        timed = len(progress.times) // 2 if progress.times else 0
        call_ids = [call_id(step.name, None if step.for_each is None else i) for i in range(timed)]
        timeline = timing.call_timeline(state, progress, call_ids, codes=codes, budget=budget)
        budget -= len(timeline)
        steps.append(
            {
                "step": step.name,
                "status": summary_status(progress),
                "calls": len(progress.calls),
                "failed_calls": progress.failed,
                "attempts": progress.attempts_made,
                "compensated_calls": progress.compensated,
                "duration_ms": duration,
                "started_ms": _offset(state, progress.started_ms),
                "finished_ms": _offset(state, progress.finished_ms),
                "call_timeline": timeline,
            }
        )
    return {
        "schema_version": RESULT_SCHEMA_VERSION,
        "request_id": state.request_id,
        "flow": flow.name,
        "flow_version": state.flow_version,
        "status": status,
        "complete": status == "completed" and state.complete,
        "data": data,
        "steps": steps,
        "errors": list(state.errors),
        "started_at_ms": state.started_ms,
        "finished_at_ms": now_ms,
    }


def _offset(state: SagaState, at_ms: int | None) -> int | None:
    return None if at_ms is None else at_ms - state.started_ms


def summary_status(progress: StepProgress) -> str:
    """How a step ended, as the result reports it (see :data:`contracts.events.StepStatus`)."""
    status = progress.status
    if status == "waiting" or (status == "running" and progress.attempts_made == 0):
        # Queued, or withdrawn before any call left: nothing was sent.
        return "not_run"
    if status == "skipped":
        return status
    if progress.compensation_failed:
        return "compensation_failed"
    if status in ("failed", "timed_out"):
        # The step that failed says so, even if its other calls were undone
        # (``compensated_calls`` counts those).
        return status
    if progress.compensated:
        return "compensated"
    if progress.cancelled:
        return "cancelled"
    if status != "running":
        return status
    # The saga failed while this step ran; its calls that were in flight ended.
    calls = len(progress.calls)
    if progress.failed == 0:
        return "ok"
    if progress.failed < calls:
        return "partial"
    return "timed_out" if progress.timeouts == calls else "failed"


def rejected_result(
    *, request_id: str, flow: str | None, code: str, message: str, now_ms: int
) -> dict[str, Any]:
    """The result of a request that never became a saga (unknown flow, bad input...)."""
    return {
        "schema_version": RESULT_SCHEMA_VERSION,
        "request_id": request_id,
        "flow": flow,
        "flow_version": None,
        "status": "failed",
        "complete": False,
        "data": None,
        "steps": [],
        "errors": [step_error(code, message)],
        "started_at_ms": now_ms,
        "finished_at_ms": now_ms,
    }
