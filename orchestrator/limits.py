"""Limits on what one request may make the coordinator do (pure, no I/O).

Each is checked before the work it bounds is done, fails only the saga (or the
record) that crossed it, with a stable code, and is a setting
(``ORCH_MAX_*``, see :class:`orchestrator.settings.CoordinatorSettings`):

======================  =============================  =======================================
limit                   checked                        code
======================  =============================  =======================================
request size            on the raw bytes, unparsed     ``request.too_large``
input nesting depth     before the input is validated  ``input.too_deep``
input array length      before the input is validated  ``input.too_long``
``for_each`` length     before a step's calls start    ``step.for_each_too_long``
mapping work            while an expression runs       ``step.mapping_budget``
composed result size    before the result is sent      ``result.too_large``
======================  =============================  =======================================

The saga core reads the limits of its context (:func:`current_limits`): the
coordinator runs its loops in a context where :data:`LIMITS` holds its settings',
so the core stays a pure function of (state, event) with no settings argument.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits the saga core and the intake apply (defaults as the settings')."""

    max_request_bytes: int = 1_048_576
    max_input_depth: int = 32
    max_input_array_length: int = 10_000
    max_for_each: int = 10_000
    max_mapping_work: int = 250_000
    max_result_bytes: int = 1_000_000


DEFAULT_LIMITS = Limits()

LIMITS: ContextVar[Limits] = ContextVar("orchestrator_limits")
"""The limits of the running context (unset: :data:`DEFAULT_LIMITS`); the
coordinator sets its own for each of its loops."""


def current_limits() -> Limits:
    """The limits of the running context."""
    return LIMITS.get(DEFAULT_LIMITS)


class ShapeError(ValueError):
    """A JSON value is nested deeper, or holds a longer array, than allowed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def check_shape(value: Any, *, max_depth: int, max_array_length: int) -> None:
    """Walk ``value`` without recursion; raise :class:`ShapeError` past a limit.

    Iterative, so a value nested 10,000 levels deep costs one short loop that
    stops at ``max_depth``, never a ``RecursionError``.

    Raises:
        ShapeError: ``input.too_deep`` or ``input.too_long``, naming where.
    """
    stack: list[tuple[Any, int, str]] = [(value, 1, "input")]
    while stack:
        node, depth, where = stack.pop()
        if isinstance(node, dict):
            children: Any = node.items()
        elif isinstance(node, list):
            if len(node) > max_array_length:
                raise ShapeError(
                    "input.too_long",
                    f"{where} is an array of {len(node)} items; at most "
                    f"{max_array_length} are allowed (ORCH_MAX_INPUT_ARRAY_LENGTH)",
                )
            children = enumerate(node)
        else:
            continue
        if depth > max_depth:
            raise ShapeError(
                "input.too_deep",
                f"{where} is nested more than {max_depth} levels deep (ORCH_MAX_INPUT_DEPTH)",
            )
        for name, child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1, f"{where}/{name}"))
