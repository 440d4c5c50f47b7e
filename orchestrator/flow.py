"""Compile a :class:`~contracts.flow.FlowDefinition` into a checked, runnable flow.

Compiling does every check that can be done before a request arrives: names,
services and operations exist, expressions compile and read only what they may,
HTTP templates find their fields, the dependency graph has no cycle, and the
input schema is a valid JSON Schema. All problems are reported at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError

from contracts.catalog import HttpService
from contracts.flow import RESERVED_NAMES, FlowDefinition, StepDefinition
from contracts.flow import Mapping as MappingSpec
from handlers.templates import compile_json, compile_text
from orchestrator.catalog import LoadedCatalog
from orchestrator.errors import FlowLoadError
from orchestrator.expressions import CompiledExpression, ExpressionError, compile_expression


@dataclass(frozen=True, slots=True)
class CompiledMapping:
    """An expression, or an object whose leaves are expressions."""

    expression: CompiledExpression | None
    fields: tuple[tuple[str, CompiledMapping], ...]
    reads: frozenset[str]

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        """Build the mapped value from ``context``."""
        if self.expression is not None:
            return self.expression.evaluate(context)
        return {name: mapping.evaluate(context) for name, mapping in self.fields}

    def field_names(self) -> frozenset[str] | None:
        """Top-level keys this mapping produces; None if it is one expression."""
        return None if self.expression is not None else frozenset(name for name, _ in self.fields)


def compile_mapping(spec: MappingSpec) -> CompiledMapping:
    """Compile a mapping; raises :class:`ExpressionError` naming the bad field."""
    if isinstance(spec, str):
        expression = compile_expression(spec)
        return CompiledMapping(expression=expression, fields=(), reads=expression.reads)
    fields = []
    for name, child in spec.items():
        try:
            fields.append((name, compile_mapping(child)))
        except ExpressionError as error:
            raise ExpressionError(f"field '{name}': {error}") from None
    reads = frozenset().union(*(mapping.reads for _, mapping in fields))
    return CompiledMapping(expression=None, fields=tuple(fields), reads=reads)


@dataclass(frozen=True, slots=True)
class CompiledStep:
    """A step ready to run: compiled mappings and its resolved dependencies."""

    name: str
    service: str
    operation: str
    input: CompiledMapping
    for_each: CompiledExpression | None
    output: CompiledMapping | None
    depends_on: frozenset[str]
    optional: bool
    timeout_ms: int


@dataclass(frozen=True, slots=True)
class CompiledFlow:
    """A checked flow: steps in a dependency-respecting order, the result mapping."""

    name: str
    definition: FlowDefinition
    steps: tuple[CompiledStep, ...]
    result: CompiledMapping
    input_validator: jsonschema.protocols.Validator
    source: str
    _by_name: dict[str, CompiledStep] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The saga core looks a step up on every event: a dict, not a scan.
        object.__setattr__(self, "_by_name", {step.name: step for step in self.steps})

    def step(self, name: str) -> CompiledStep:
        """Return the step called ``name`` (KeyError if there is none)."""
        return self._by_name[name]


def compile_flow(
    definition: FlowDefinition, *, catalog: LoadedCatalog, source: str = "<flow>"
) -> CompiledFlow:
    """Check ``definition`` against ``catalog`` and compile it.

    Raises:
        FlowLoadError: listing every problem, each naming the step and what to change.
    """
    problems: list[str] = []
    steps: dict[str, CompiledStep] = {}
    step_names = frozenset(definition.steps)
    for name, step in definition.steps.items():
        compiled = _compile_step(
            name, step, definition=definition, catalog=catalog, steps=step_names, problems=problems
        )
        if compiled is not None:
            steps[name] = compiled
    result: CompiledMapping | None = None
    try:
        result = compile_mapping(definition.result)
        _check_reads("result", result.reads, allowed=step_names | {"input"}, problems=problems)
    except ExpressionError as error:
        problems.append(f"result: {error}")
    try:
        validator_class = jsonschema.validators.validator_for(definition.input_schema)
        validator_class.check_schema(definition.input_schema)
        validator = validator_class(definition.input_schema)
    except SchemaError as error:
        problems.append(f"input_schema is not a valid JSON Schema: {error.message}")
    ordered = _topological_order(steps, problems) if len(steps) == len(definition.steps) else []
    if problems or result is None:
        details = "\n  ".join(problems)
        raise FlowLoadError(f"{source}: flow '{definition.name}' is invalid:\n  {details}")
    return CompiledFlow(
        name=definition.name,
        definition=definition,
        steps=tuple(ordered),
        result=result,
        input_validator=validator,
        source=source,
    )


def _compile_step(
    name: str,
    step: StepDefinition,
    *,
    definition: FlowDefinition,
    catalog: LoadedCatalog,
    steps: frozenset[str],
    problems: list[str],
) -> CompiledStep | None:
    where = f"step '{name}'"
    before = len(problems)
    if name in RESERVED_NAMES:
        problems.append(f"{where}: '{name}' is reserved for the expression context; rename it")
    _check_service(where, step, catalog=catalog, problems=problems)
    others = steps - {name}
    context_names = others | {"input"}
    if step.for_each is not None:
        context_names |= {"item", "index"}
    compiled: dict[str, Any] = {}
    for part, spec, extra in (
        ("input", step.input, frozenset[str]()),
        ("output", step.output, frozenset({"reply"})),
    ):
        if spec is None:
            continue
        try:
            compiled[part] = compile_mapping(spec)
            _check_reads(
                f"{where} {part}",
                compiled[part].reads,
                allowed=context_names | extra,
                problems=problems,
            )
        except ExpressionError as error:
            problems.append(f"{where} {part}: {error}")
    if step.for_each is not None:
        try:
            compiled["for_each"] = compile_expression(step.for_each)
            _check_reads(
                f"{where} for_each",
                compiled["for_each"].reads,
                allowed=others | {"input"},
                problems=problems,
            )
        except ExpressionError as error:
            problems.append(f"{where} for_each: {error}")
    for other in step.after:
        if other not in others:
            problems.append(f"{where} after: '{other}' is not another step of this flow")
    if "input" in compiled:
        _check_templates(where, step, compiled["input"], catalog=catalog, problems=problems)
    if len(problems) > before:
        return None
    reads = compiled["input"].reads | (
        compiled["output"].reads if "output" in compiled else frozenset()
    )
    if "for_each" in compiled:
        reads |= compiled["for_each"].reads
    return CompiledStep(
        name=name,
        service=step.service,
        operation=step.operation,
        input=compiled["input"],
        for_each=compiled.get("for_each"),
        output=compiled.get("output"),
        depends_on=frozenset((reads & others) | set(step.after)),
        optional=step.optional,
        timeout_ms=step.timeout_ms or definition.defaults.timeout_ms,
    )


def _check_service(
    where: str, step: StepDefinition, *, catalog: LoadedCatalog, problems: list[str]
) -> None:
    services = catalog.catalog.services
    if step.service not in services:
        known = ", ".join(sorted(services)) or "none"
        problems.append(
            f"{where}: unknown service '{step.service}' (services in {catalog.source}: {known})"
        )
        return
    operations = catalog.operations_of(step.service)
    if operations is not None and step.operation not in operations:
        known = ", ".join(sorted(operations))
        problems.append(
            f"{where}: service '{step.service}' has no operation '{step.operation}' "
            f"(it has: {known})"
        )


def _check_reads(
    where: str, reads: frozenset[str], *, allowed: frozenset[str], problems: list[str]
) -> None:
    for name in sorted(reads - allowed):
        if name in RESERVED_NAMES:
            problems.append(f"{where}: '{name}' is not available here")
        else:
            problems.append(
                f"{where}: reads '{name}', which is not a step of this flow nor 'input'"
            )


def _check_templates(
    where: str,
    step: StepDefinition,
    mapping: CompiledMapping,
    *,
    catalog: LoadedCatalog,
    problems: list[str],
) -> None:
    service = catalog.catalog.services.get(step.service)
    provided = mapping.field_names()
    if not isinstance(service, HttpService) or provided is None:
        return
    operation = service.operations.get(step.operation)
    if operation is None:
        return
    needed = set(compile_text(operation.path).fields)
    for template in (*operation.query.values(), *operation.headers.values()):
        needed |= compile_text(template).fields
    needed |= compile_json(operation.body).fields
    for missing in sorted(needed - provided):
        problems.append(
            f"{where}: {step.service}.{step.operation} needs input field '{missing}', "
            "which the step's input does not set"
        )


def _topological_order(steps: dict[str, CompiledStep], problems: list[str]) -> list[CompiledStep]:
    order: list[CompiledStep] = []
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> Iterator[str]:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = [*path[path.index(name) :], name]
            yield " -> ".join(cycle)
            return
        state[name] = "visiting"
        for dependency in sorted(steps[name].depends_on):
            yield from visit(dependency, [*path, name])
        state[name] = "done"
        order.append(steps[name])

    for name in steps:
        for cycle in visit(name, []):
            problems.append(
                f"steps form a cycle: {cycle}; break it by removing a read or an 'after'"
            )
            return []
    return order
