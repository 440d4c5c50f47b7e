"""JMESPath expressions, compiled once, with the names they read from the context.

Every expression in a flow is evaluated against one context object whose keys are
``input``, the names of earlier steps, and (where they apply) ``item``, ``index``
and ``reply``. :func:`compile_expression` finds which of those root names an
expression reads, which is how a flow infers the dependencies between its steps.

JMESPath has no arithmetic and no way to reach the root from inside a filter, so a
few functions are added (all pure, all bounded by their arguments' size):

- ``multiply(a, b)``: the product of two numbers;
- ``round(n, digits)``: ``n`` rounded to ``digits`` decimals;
- ``where_in(list, field, values)``: the objects of ``list`` whose ``field`` is
  one of ``values`` (a semi-join, e.g. keep products that are in stock).

Every evaluation has a work budget (``ORCH_MAX_MAPPING_WORK``, read from
:func:`orchestrator.limits.current_limits`): it counts the nodes the interpreter
will visit, charged up front: a projection or filter over a list costs the list's
length times the nodes it evaluates per element, a flatten or a function call the
length of the arrays, objects or strings it walks (``length`` excepted). An
expression that projects over a 1,000,000-item reply fails at once with
:class:`MappingBudgetError` (``step.mapping_budget``) instead of holding the event
loop for seconds. Counting work, not time, keeps the core deterministic: the same
saga fails the same way after a restart. (A thread with a timeout would not help:
jmespath is pure Python and holds the GIL.) The default budget, 250,000 visits, is
a few tenths of a second of CPU at most. Plain field paths (``input.order_id``)
cost nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import jmespath
from jmespath import exceptions as jmespath_errors
from jmespath import functions as jmespath_functions
from jmespath import visitor as jmespath_visitor

from orchestrator.limits import current_limits


class _FlowFunctions(jmespath_functions.Functions):
    # jmespath discovers functions by the `_func_` prefix and checks argument
    # types against the signature before calling.
    @jmespath_functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_multiply(self, left: float, right: float) -> float:
        return left * right

    @jmespath_functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_round(self, value: float, digits: float) -> float:
        return round(value, int(digits))

    @jmespath_functions.signature(
        {"types": ["array"]}, {"types": ["string"]}, {"types": ["array", "null"]}
    )
    def _func_where_in(self, items: list[Any], field: str, values: list[Any] | None) -> list[Any]:
        wanted = {_hashable(value) for value in values or ()}
        return [
            entry
            for entry in items
            if isinstance(entry, dict) and _hashable(entry.get(field)) in wanted
        ]


def _hashable(value: Any) -> Any:
    # Tagged with the JSON type, so `true` does not match `1` (as in JMESPath's own ==).
    if isinstance(value, bool):
        return ("boolean", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, str) or value is None:
        return value
    return ("other", repr(value))


class _OverBudget(Exception):
    """Raised inside the interpreter when an evaluation has spent its budget."""


class _BudgetedInterpreter(jmespath_visitor.TreeInterpreter):
    """jmespath's interpreter, charging up front for every element a projection,
    filter, flatten or function will walk: a projection costs its list's length
    times the nodes it evaluates per element (its ``_WEIGHT``, set at compile
    time), so the budget counts node visits at no cost per visit, and an
    expression over too much data fails before it does the work."""

    def __init__(self, functions: _FlowFunctions) -> None:
        super().__init__(jmespath.Options(custom_functions=functions))
        self.remaining = 0
        self._flow_functions = functions

    def visit_projection(self, node: Any, value: Any) -> Any:
        base = self.visit(node["children"][0], value)
        if not isinstance(base, list):
            return None
        self._charge(len(base) * node[_WEIGHT])
        right = node["children"][1]
        return [current for element in base if (current := self.visit(right, element)) is not None]

    def visit_value_projection(self, node: Any, value: Any) -> Any:
        base = self.visit(node["children"][0], value)
        if not isinstance(base, dict):
            return None
        self._charge(len(base) * node[_WEIGHT])
        right = node["children"][1]
        return [
            current
            for element in base.values()
            if (current := self.visit(right, element)) is not None
        ]

    def visit_filter_projection(self, node: Any, value: Any) -> Any:
        base = self.visit(node["children"][0], value)
        if not isinstance(base, list):
            return None
        self._charge(len(base) * node[_WEIGHT])
        right, condition = node["children"][1], node["children"][2]
        collected = []
        for element in base:
            if _is_true(self.visit(condition, element)):
                current = self.visit(right, element)
                if current is not None:
                    collected.append(current)
        return collected

    def visit_function_expression(self, node: Any, value: Any) -> Any:
        resolved = [self.visit(child, value) for child in node["children"]]
        # Built-ins (sort, join, to_string, where_in...) loop over their
        # arguments without visiting nodes: charge their sizes up front.
        if node["value"] != "length":  # length() is O(1)
            self._charge(sum(len(a) for a in resolved if isinstance(a, list | dict | str)))
        return self._flow_functions.call_function(node["value"], resolved)

    def visit_flatten(self, node: Any, value: Any) -> Any:
        # jmespath's own flatten, charged for the list it walks.
        base = self.visit(node["children"][0], value)
        if not isinstance(base, list):
            return None
        self._charge(len(base))
        merged: list[Any] = []
        for element in base:
            if isinstance(element, list):
                merged.extend(element)
            else:
                merged.append(element)
        return merged

    def _charge(self, units: int) -> None:
        self.remaining -= units
        if self.remaining < 0:
            raise _OverBudget


_WEIGHT = "orchestrator_weight"
"""The key under which :func:`_weigh` stores, in a projection node, the nodes its
per-element children hold (jmespath's parse trees are plain dicts)."""
_PROJECTIONS = frozenset({"projection", "value_projection", "filter_projection"})


def _weigh(node: Any) -> int:
    """The number of nodes under ``node``; stores each projection's weight in it."""
    if not isinstance(node, dict):
        return 0
    sizes = [_weigh(child) for child in node.get("children", ())]
    if node["type"] in _PROJECTIONS:
        node[_WEIGHT] = max(sum(sizes[1:]), 1)
    return 1 + sum(sizes)


def _is_true(value: Any) -> bool:
    # JMESPath's truth (as its interpreter's): 0 is true.
    return not (value in ("", [], {}) or value is None or value is False)


_FUNCTIONS = _FlowFunctions()
_LOCAL = threading.local()


def _interpreter() -> _BudgetedInterpreter:
    """This thread's interpreter. ``ParsedResult.search`` makes a new one per call, and
    each holds a cycle (its method cache of bound methods): six per saga left for the
    cyclic collector, whose full passes over 100,000 sagas in flight took hundreds
    of milliseconds. One per thread, because each carries its evaluation's budget."""
    interpreter: _BudgetedInterpreter | None = getattr(_LOCAL, "interpreter", None)
    if interpreter is None:
        interpreter = _LOCAL.interpreter = _BudgetedInterpreter(_FUNCTIONS)
    return interpreter


class ExpressionError(ValueError):
    """An expression does not compile, or reads the context in a way we reject."""


@dataclass(frozen=True, slots=True)
class CompiledExpression:
    """A compiled JMESPath expression and the root names it reads."""

    source: str
    reads: frozenset[str]
    _parsed: Any
    _path: tuple[str, ...] | None = None
    """For a plain field path (``input.order_id``): the names, read without the
    JMESPath interpreter (same result, a fraction of the cost on the hot path)."""

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        """Evaluate against ``context``; raises :class:`EvaluationError` on a type error."""
        if self._path is not None:
            value: Any = context
            for name in self._path:
                # JMESPath: a field of anything but an object is null.
                if not isinstance(value, dict):
                    return None
                value = value.get(name)
            return value
        interpreter = _interpreter()
        budget = current_limits().max_mapping_work
        interpreter.remaining = budget
        try:
            return interpreter.visit(self._parsed.parsed, context)
        except jmespath_errors.JMESPathError as error:
            raise EvaluationError(f"expression {self.source!r} failed: {error}") from error
        except _OverBudget:
            raise MappingBudgetError(
                f"expression {self.source!r} needed more than {budget} units of work "
                "(ORCH_MAX_MAPPING_WORK): its input is too large for it"
            ) from None


class EvaluationError(ValueError):
    """An expression failed at run time (for example a function got a wrong type)."""

    code: str | None = None
    """The error's own code, when it has one; None: the caller's (``step.input_error``...)."""


class MappingBudgetError(EvaluationError):
    """An expression spent its work budget (``ORCH_MAX_MAPPING_WORK``)."""

    code = "step.mapping_budget"


def compile_expression(source: str) -> CompiledExpression:
    """Compile ``source`` and work out which root names it reads.

    Raises:
        ExpressionError: the text is not JMESPath, or reads ``@`` at the top level
            (which would make the dependencies of a step unknowable).
    """
    try:
        parsed = jmespath.compile(source)
    except jmespath_errors.JMESPathError as error:
        message = str(error).splitlines()[0]
        raise ExpressionError(f"{source!r} is not a valid JMESPath expression: {message}") from None
    _weigh(parsed.parsed)
    return CompiledExpression(
        source=source,
        reads=frozenset(_root_reads(parsed.parsed)),
        _parsed=parsed,
        _path=_field_path(parsed.parsed),
    )


def _field_path(node: Any) -> tuple[str, ...] | None:
    """``("a", "b")`` for the expression ``a.b``; None for anything else."""
    kind = node.get("type")
    if kind == "field":
        return (node["value"],)
    if kind == "subexpression":
        names: list[str] = []
        for child in node["children"]:
            part = _field_path(child)
            if part is None:
                return None
            names.extend(part)
        return tuple(names)
    return None


# Node types whose first child is evaluated against the current value and whose
# other children are evaluated against something derived from it.
_LEFT_THEN_DERIVED = frozenset(
    {
        "subexpression",
        "index_expression",
        "projection",
        "value_projection",
        "filter_projection",
        "pipe",
    }
)
# Node types whose children are all evaluated against the current value.
_ALL_CURRENT = frozenset(
    {
        "flatten",
        "multi_select_dict",
        "multi_select_list",
        "key_val_pair",
        "function_expression",
        "and_expression",
        "or_expression",
        "not_expression",
        "comparator",
    }
)


def _root_reads(node: Any, *, at_root: bool = True) -> Iterator[str]:
    if not isinstance(node, dict):
        return  # a slice's bounds are plain integers (or None), not nodes
    kind = node["type"]
    children: list[dict[str, Any]] = node.get("children", [])
    if kind == "field":
        if at_root:
            yield node["value"]
    elif kind == "current":
        if at_root:
            raise ExpressionError(
                "'@' at the top level reads the whole context; name what you read "
                "(input, item, index, reply or a step)"
            )
    elif kind in _LEFT_THEN_DERIVED:
        if children:
            yield from _root_reads(children[0], at_root=at_root)
        for child in children[1:]:
            yield from _root_reads(child, at_root=False)
    elif kind in _ALL_CURRENT:
        for child in children:
            yield from _root_reads(child, at_root=at_root)
    else:
        # expref (&expr) is evaluated per element; literal, index, slice and
        # identity read nothing from the root.
        for child in children:
            yield from _root_reads(child, at_root=False)
