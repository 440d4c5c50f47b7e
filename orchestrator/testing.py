"""Test your flows and adapters without a broker.

:class:`FlowRun` drives the real saga core step by step, given/expect style;
time moves only when the test says so. :func:`run_flow` answers every call from
a table of fake operations and returns the result::

    from orchestrator.testing import FlowRun, run_flow

    run = FlowRun(flow, input={"order_id": "o-1"})
    run.expect_calls("reserve")
    run.reply("reserve", {"reservation_id": "res-1"})
    run.fail("charge", "http.402", "card declined")
    run.expect_compensations("reserve")          # the reservation is released
    run.reply("reserve~undo")
    run.expect_no_more_calls()
    assert run.result["status"] == "failed"

    run = FlowRun(flow, input={...})
    run.fail("charge", "http.503", technical=True)  # retryable: a backoff timer is armed
    run.advance(1_000)                             # fires due timers: the retry is sent
    assert run.call("charge").attempt == 2

    result = run_flow(flow, {"order_id": "o-1"}, answers={"orders.get_order": lambda i: {...}})

A compensation's call id is the undone call's id plus ``~undo``
(``reserve~undo``, ``lines#3~undo``).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from typing import Any

from handlers.outcome import CallOutcome
from orchestrator.flow import CompiledFlow
from orchestrator.saga import (
    ArmTimer,
    CallReplied,
    CallTimedOut,
    DispatchCall,
    EventIgnored,
    PublishResult,
    RetryDue,
    SagaAction,
    SagaDeadlinePassed,
    SagaEvent,
    decide,
    start_saga,
)
from orchestrator.saga.state import UNDO_SUFFIX

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
        """Every attempt of every call (compensations too), in dispatch order."""
        self.results: list[dict[str, Any]] = []
        self.ignored: list[EventIgnored] = []
        """Replies the saga ignored (late, duplicate, stray)."""
        self._open: dict[str, DispatchCall] = {}
        self._latest: dict[str, DispatchCall] = {}
        self._timers: list[tuple[int, int, SagaEvent]] = []
        self._sequence = 0
        self.state, actions = start_saga(flow, request_id=request_id, input=input, now_ms=now_ms)
        self._take(actions)

    # -- looking -------------------------------------------------------------

    @property
    def result(self) -> dict[str, Any] | None:
        """The result event, once the saga has finished."""
        return self.results[0] if self.results else None

    def pending_calls(self) -> list[str]:
        """Ids of calls with an attempt out and no answer yet, in dispatch order."""
        return list(self._open)

    def call(self, call: str) -> DispatchCall:
        """The latest attempt of the dispatched call ``call``."""
        latest = self._latest.get(call)
        if latest is None:
            raise KeyError(f"no call {call!r} was dispatched (dispatched: {self._ids()})")
        return latest

    def attempts(self, call: str) -> int:
        """How many attempts of ``call`` were dispatched."""
        return sum(1 for action in self.dispatched if action.call == call)

    def compensations(self) -> list[str]:
        """Ids of the calls undone so far, in the order their first undo was sent."""
        seen: dict[str, None] = {}
        for action in self.dispatched:
            if action.call.endswith(UNDO_SUFFIX):
                seen.setdefault(action.call.removesuffix(UNDO_SUFFIX))
        return list(seen)

    # -- expecting -----------------------------------------------------------

    def expect_calls(self, *calls: str) -> FlowRun:
        """Assert that exactly ``calls`` are awaiting an answer (in any order)."""
        pending = self.pending_calls()
        if sorted(pending) != sorted(calls):
            raise AssertionError(f"expected calls {sorted(calls)}, pending: {sorted(pending)}")
        return self

    def expect_compensations(self, *calls: str) -> FlowRun:
        """Assert that the undo of exactly ``calls`` is awaiting an answer (any order)."""
        pending = [
            call.removesuffix(UNDO_SUFFIX) for call in self._open if call.endswith(UNDO_SUFFIX)
        ]
        if sorted(pending) != sorted(calls) or len(pending) != len(self._open):
            raise AssertionError(
                f"expected the compensations of {sorted(calls)}, pending: {self.pending_calls()}"
            )
        return self

    def expect_no_more_calls(self) -> FlowRun:
        """Assert nothing is pending: no call awaits an answer and no retry is due."""
        retries = [event for _, _, event in self._timers if isinstance(event, RetryDue)]
        if self._open or (self.result is None and retries):
            raise AssertionError(
                f"calls still pending: {self.pending_calls()}; retries armed: "
                f"{[event.call for event in retries]}"
            )
        return self

    # -- acting --------------------------------------------------------------

    def reply(self, call: str, output: Any = None, *, after_ms: int = 1) -> FlowRun:
        """Answer ``call`` successfully."""
        return self.answer(call, CallOutcome.ok(output), after_ms=after_ms)

    def fail(
        self,
        call: str,
        code: str,
        message: str = "",
        *,
        technical: bool = False,
        retry_after_ms: int | None = None,
        after_ms: int = 1,
    ) -> FlowRun:
        """Answer ``call`` with a business error (final) or a technical one (retryable)."""
        outcome = (
            CallOutcome.technical_error(code, message, retry_after_ms=retry_after_ms)
            if technical
            else CallOutcome.business_error(code, message)
        )
        return self.answer(call, outcome, after_ms=after_ms)

    def answer(self, call: str, outcome: CallOutcome, *, after_ms: int = 1) -> FlowRun:
        """Deliver ``outcome`` for the latest attempt of ``call``."""
        dispatched = self.call(call)
        self.now_ms += after_ms
        self._open.pop(call, None)
        self._decide(
            CallReplied.from_outcome(
                outcome, call=call, attempt=dispatched.attempt, at_ms=self.now_ms
            )
        )
        return self

    def time_out(self, call: str) -> FlowRun:
        """Let the latest attempt of ``call`` reach its deadline with no answer."""
        dispatched = self.call(call)
        self.now_ms = max(self.now_ms, dispatched.deadline_ms)
        self._open.pop(call, None)
        self._decide(CallTimedOut(call=call, attempt=dispatched.attempt, at_ms=self.now_ms))
        return self

    def advance(self, ms: int) -> FlowRun:
        """Move time ``ms`` forward, firing due timers in order: call deadlines, retries,
        the flow's deadline."""
        until = self.now_ms + ms
        while True:
            due = self._next_due(until)
            if due is None:
                break
            at_ms, event = due
            self.now_ms = max(self.now_ms, at_ms)
            self._decide(event)
        self.now_ms = until
        return self

    # -- internals -----------------------------------------------------------

    def _next_due(self, until: int | None = None) -> tuple[int, SagaEvent] | None:
        """Take the earliest timer (a call deadline or an armed timer) due by ``until``."""
        deadline = min(self._open.values(), key=lambda action: action.deadline_ms, default=None)
        timer_at = self._timers[0][0] if self._timers else None
        candidates = [at for at in (timer_at,) if at is not None]
        if deadline is not None:
            candidates.append(deadline.deadline_ms)
        earliest = min(candidates, default=None)
        if earliest is None or (until is not None and earliest > until):
            return None
        if deadline is not None and (timer_at is None or deadline.deadline_ms <= timer_at):
            del self._open[deadline.call]
            return deadline.deadline_ms, CallTimedOut(
                call=deadline.call, attempt=deadline.attempt, at_ms=deadline.deadline_ms
            )
        if timer_at is None:
            return None
        at_ms, _, event = heapq.heappop(self._timers)
        return at_ms, event

    def _decide(self, event: SagaEvent) -> None:
        self.state, actions = decide(self.flow, self.state, event)
        self._take(actions)

    def _take(self, actions: list[SagaAction]) -> None:
        for action in actions:
            if isinstance(action, DispatchCall):
                self.dispatched.append(action)
                self._open[action.call] = action
                self._latest[action.call] = action
            elif isinstance(action, ArmTimer):
                self._sequence += 1
                event: SagaEvent = (
                    RetryDue(call=action.call, attempt=action.attempt, at_ms=action.at_ms)
                    if action.kind == "retry"
                    else SagaDeadlinePassed(at_ms=action.at_ms)
                )
                heapq.heappush(self._timers, (action.at_ms, self._sequence, event))
            elif isinstance(action, PublishResult):
                self.results.append(action.result)
            else:
                self.ignored.append(action)

    def _ids(self) -> str:
        return ", ".join(action.call for action in self.dispatched) or "none"


def run_flow(
    flow: CompiledFlow,
    input: dict[str, Any],
    *,
    answers: Mapping[str, Answer],
    max_events: int = 100_000,
) -> dict[str, Any]:
    """Run ``flow`` to its result, answering each call from ``answers``.

    ``answers`` maps ``"service.operation"`` to a function of the call input that
    returns the output, or a :class:`CallOutcome` to simulate errors (technical
    errors are retried as the flow says; retry waits pass at once).
    Compensations are answered from the same table.
    """
    run = FlowRun(flow, input=input)
    for _ in range(max_events):
        if run.result is not None:
            return run.result
        pending = run.pending_calls()
        if not pending:
            due = run._next_due()
            if due is None:
                raise AssertionError("the saga is waiting for nothing and has no result")
            run.now_ms = max(run.now_ms, due[0])
            run._decide(due[1])
            continue
        call = run.call(pending[0])
        key = f"{call.service}.{call.operation}"
        if key not in answers:
            raise KeyError(f"no answer for {key} (call {call.call}); add it to `answers`")
        answered = answers[key](call.input)
        run.answer(
            call.call, answered if isinstance(answered, CallOutcome) else CallOutcome.ok(answered)
        )
    raise AssertionError(f"the saga did not finish within {max_events} events")
