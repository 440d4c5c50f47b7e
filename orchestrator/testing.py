"""Test your flows and adapters without a broker.

:class:`FlowRun` drives the real saga core step by step; :func:`run_flow`
answers every call from a table of fake operations and returns the result::

    from orchestrator.testing import FlowRun, run_flow

    run = FlowRun(flow, input={"order_id": "o-1"})
    assert run.pending_calls() == ["order"]
    run.reply("order", {"user_id": "u-1", "store_id": "s-1", "items": []})
    ...
    assert run.result["status"] == "completed"

    result = run_flow(flow, {"order_id": "o-1"}, answers={"orders.get_order": lambda i: {...}})
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from handlers.outcome import CallOutcome
from orchestrator.flow import CompiledFlow
from orchestrator.saga import (
    CallReplied,
    CallTimedOut,
    DispatchCall,
    PublishResult,
    SagaAction,
    decide,
    start_saga,
)
from orchestrator.saga.state import parse_call_id

Answer = Callable[[Any], Any]
"""A fake operation: gets the call input, returns the output or a :class:`CallOutcome`."""


class FlowRun:
    """One saga of ``flow``, advanced by the test; time moves only when told."""

    def __init__(
        self,
        flow: CompiledFlow,
        *,
        input: dict[str, Any],
        request_id: str = "test-request",
        now_ms: int = 0,
    ) -> None:
        self.flow = flow
        self.now_ms = now_ms
        self.dispatched: list[DispatchCall] = []
        self.results: list[dict[str, Any]] = []
        self.state, actions = start_saga(flow, request_id=request_id, input=input, now_ms=now_ms)
        self._take(actions)

    @property
    def result(self) -> dict[str, Any] | None:
        """The result event, once the saga has finished."""
        return self.results[0] if self.results else None

    def pending_calls(self) -> list[str]:
        """Ids of dispatched calls not yet answered, in dispatch order."""
        answered = {
            call for call in (action.call for action in self.dispatched) if self._is_answered(call)
        }
        return [action.call for action in self.dispatched if action.call not in answered]

    def call(self, call: str) -> DispatchCall:
        """The dispatched call with id ``call``."""
        for action in self.dispatched:
            if action.call == call:
                return action
        raise KeyError(f"no call {call!r} was dispatched (dispatched: {self._ids()})")

    def reply(self, call: str, output: Any = None, *, after_ms: int = 1) -> FlowRun:
        """Answer ``call`` successfully."""
        return self.answer(call, CallOutcome.ok(output), after_ms=after_ms)

    def fail(
        self, call: str, code: str, message: str = "", *, technical: bool = False, after_ms: int = 1
    ) -> FlowRun:
        """Answer ``call`` with a business (or technical) error."""
        outcome = (
            CallOutcome.technical_error(code, message)
            if technical
            else CallOutcome.business_error(code, message)
        )
        return self.answer(call, outcome, after_ms=after_ms)

    def answer(self, call: str, outcome: CallOutcome, *, after_ms: int = 1) -> FlowRun:
        """Deliver ``outcome`` for ``call``."""
        dispatched = self.call(call)
        self.now_ms += after_ms
        event = CallReplied(
            call=call,
            attempt=dispatched.attempt,
            status=outcome.status,
            at_ms=self.now_ms,
            output=outcome.output,
            error_code=outcome.error_code,
            error_message=outcome.error_message,
        )
        self.state, actions = decide(self.flow, self.state, event)
        self._take(actions)
        return self

    def time_out(self, call: str) -> FlowRun:
        """Let ``call``'s deadline pass with no answer."""
        dispatched = self.call(call)
        self.now_ms = max(self.now_ms, dispatched.deadline_ms)
        event = CallTimedOut(call=call, attempt=dispatched.attempt, at_ms=self.now_ms)
        self.state, actions = decide(self.flow, self.state, event)
        self._take(actions)
        return self

    def _take(self, actions: list[SagaAction]) -> None:
        for action in actions:
            if isinstance(action, DispatchCall):
                self.dispatched.append(action)
            elif isinstance(action, PublishResult):
                self.results.append(action.result)

    def _is_answered(self, call: str) -> bool:
        step, index = parse_call_id(call)
        progress = self.state.steps[step]
        slot = 0 if index is None else index
        return slot < len(progress.done) and progress.done[slot]

    def _ids(self) -> str:
        return ", ".join(action.call for action in self.dispatched) or "none"


def run_flow(
    flow: CompiledFlow, input: dict[str, Any], *, answers: Mapping[str, Answer]
) -> dict[str, Any]:
    """Run ``flow`` to its result, answering each call from ``answers``.

    ``answers`` maps ``"service.operation"`` to a function of the call input that
    returns the output, or a :class:`CallOutcome` to simulate errors.
    """
    run = FlowRun(flow, input=input)
    while run.result is None:
        pending = run.pending_calls()
        if not pending:
            raise AssertionError("the saga is waiting for nothing and has no result")
        call = run.call(pending[0])
        key = f"{call.service}.{call.operation}"
        if key not in answers:
            raise KeyError(f"no answer for {key} (call {call.call}); add it to `answers`")
        answered = answers[key](call.input)
        run.answer(
            call.call, answered if isinstance(answered, CallOutcome) else CallOutcome.ok(answered)
        )
    return run.result
