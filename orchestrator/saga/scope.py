"""The expression context a call's mappings are evaluated in, and call ids by slot."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orchestrator.flow import CompiledStep
from orchestrator.saga.messages import (
    CallReplied,
    EventIgnored,
    IgnoredReason,
    SagaAction,
    SagaEvent,
)
from orchestrator.saga.state import SagaState, call_id


def call_scope(state: SagaState, items: Sequence[Any] | None, index: int) -> dict[str, Any]:
    """``input``, every finished step's output, and ``item``/``index`` in a for_each."""
    context: dict[str, Any] = dict(state.outputs)
    context["input"] = state.input
    if items is not None:
        context["item"] = items[index]
        context["index"] = index
    return context


def with_item(context: dict[str, Any], items: Sequence[Any], index: int) -> dict[str, Any]:
    """``context`` with ``item`` and ``index`` of one for_each call."""
    scoped = dict(context)
    scoped["item"] = items[index]
    scoped["index"] = index
    return scoped


def call_id_of(step: CompiledStep, slot: int) -> str:
    """The call id of ``step``'s call in ``slot``."""
    return call_id(step.name, None if step.for_each is None else slot)


def ignore(event: SagaEvent, reason: IgnoredReason, actions: list[SagaAction]) -> None:
    """Report an event the saga ignores.

    Timers are never cancelled, so a timer that no longer matters is routine;
    only replies are reported: late or stray replies are worth counting.
    """
    if isinstance(event, CallReplied):
        actions.append(
            EventIgnored(reason=reason, call=event.call, attempt=event.attempt, late_reply=True)
        )
