"""Build result events (as plain dicts shaped like :class:`contracts.ResultEvent`)."""

from __future__ import annotations

from typing import Any

from contracts.base import SCHEMA_VERSION
from orchestrator.expressions import EvaluationError
from orchestrator.flow import CompiledFlow
from orchestrator.saga.state import SagaState

_SUMMARY_STATUS = {"waiting": "not_run", "running": "not_run"}


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


def completed_result(flow: CompiledFlow, state: SagaState, *, now_ms: int) -> dict[str, Any]:
    """The result of a saga whose steps all finished; failed if the result mapping fails."""
    context: dict[str, Any] = dict(state.outputs)
    context["input"] = state.input
    try:
        data = flow.result.evaluate(context)
    except EvaluationError as error:
        state.errors.append(step_error("result.mapping_error", str(error)))
        return failed_result(flow, state, now_ms=now_ms)
    return _result(flow, state, status="completed", data=data, now_ms=now_ms)


def failed_result(flow: CompiledFlow, state: SagaState, *, now_ms: int) -> dict[str, Any]:
    """The result of a saga that failed; ``state.errors`` says why."""
    return _result(flow, state, status="failed", data=None, now_ms=now_ms)


def rejected_result(
    *, request_id: str, flow: str | None, code: str, message: str, now_ms: int
) -> dict[str, Any]:
    """The result of a request that never became a saga (unknown flow, bad input...)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "request_id": request_id,
        "flow": flow,
        "status": "failed",
        "data": None,
        "steps": [],
        "errors": [step_error(code, message)],
        "started_at_ms": now_ms,
        "finished_at_ms": now_ms,
    }


def _result(
    flow: CompiledFlow, state: SagaState, *, status: str, data: Any, now_ms: int
) -> dict[str, Any]:
    steps = []
    for step in flow.steps:
        progress = state.steps[step.name]
        duration = (
            progress.finished_ms - progress.started_ms
            if progress.finished_ms is not None and progress.started_ms is not None
            else None
        )
        steps.append(
            {
                "step": step.name,
                "status": _SUMMARY_STATUS.get(progress.status, progress.status),
                "calls": len(progress.done),
                "failed_calls": progress.failed,
                "duration_ms": duration,
            }
        )
    return {
        "schema_version": SCHEMA_VERSION,
        "request_id": state.request_id,
        "flow": flow.name,
        "status": status,
        "data": data,
        "steps": steps,
        "errors": list(state.errors),
        "started_at_ms": state.started_ms,
        "finished_at_ms": now_ms,
    }
