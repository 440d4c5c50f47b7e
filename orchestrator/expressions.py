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
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import jmespath
from jmespath import exceptions as jmespath_errors
from jmespath import functions as jmespath_functions
from jmespath import visitor as jmespath_visitor


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


_OPTIONS = jmespath.Options(custom_functions=_FlowFunctions())
_INTERPRETER = jmespath_visitor.TreeInterpreter(_OPTIONS)
"""One interpreter for every evaluation. ``ParsedResult.search`` makes a new one per
call, and each holds a cycle (its method cache of bound methods): six per saga
left for the cyclic collector, whose full passes over 100,000 sagas in flight took
hundreds of milliseconds. The interpreter keeps no state between evaluations."""


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
        try:
            return _INTERPRETER.visit(self._parsed.parsed, context)
        except jmespath_errors.JMESPathError as error:
            raise EvaluationError(f"expression {self.source!r} failed: {error}") from error


class EvaluationError(ValueError):
    """An expression failed at run time (for example a function got a wrong type)."""


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
