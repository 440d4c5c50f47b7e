"""Compile a :class:`~contracts.flow.FlowDefinition` into a checked, runnable flow.

Compiling does every check that can be done before a request arrives: names,
services and operations exist, expressions compile and read only what they may,
HTTP templates find their fields, the dependency graph has no cycle, and the
input schema is a valid JSON Schema. All problems are reported at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError

from contracts.catalog import HttpService
from contracts.flow import (
    DEFAULT_ATTEMPTS,
    DEFAULT_COMPENSATION_ATTEMPTS,
    RESERVED_NAMES,
    FlowDefinition,
    RetryPolicy,
    StepDefinition,
)
from contracts.flow import Mapping as MappingSpec
from handlers.templates import compile_json, compile_text
from orchestrator.catalog import LoadedCatalog
from orchestrator.errors import FlowLoadError
from orchestrator.expressions import CompiledExpression, ExpressionError, compile_expression
from orchestrator.flow_checks import flow_warnings, topological_order
from orchestrator.retry_policy import RetrySchedule, resolve_retry


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
class CompiledCompensation:
    """How to undo one successful call of a step."""

    service: str
    operation: str
    input: CompiledMapping
    retry: RetrySchedule
    timeout_ms: int


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
    """True when a call that fails for good yields ``default`` (``optional`` or ``default``)."""
    timeout_ms: int
    retry: RetrySchedule = field(default_factory=lambda: resolve_retry(attempts=DEFAULT_ATTEMPTS))
    default: Any = None
    when: CompiledExpression | None = None
    compensation: CompiledCompensation | None = None
    concurrency: int | None = None
    shares_calls: bool = True
    """Identical calls (same service, operation, input) of one saga are made once.
    Not for steps that declare a side effect (``compensate``, or an ``after``
    ordering either way): two identical calls there are two intended changes."""


@dataclass(frozen=True, slots=True)
class CompiledFlow:
    """A checked flow: steps in a dependency-respecting order, the result mapping."""

    name: str
    definition: FlowDefinition
    steps: tuple[CompiledStep, ...]
    result: CompiledMapping
    input_validator: jsonschema.protocols.Validator
    source: str
    warnings: tuple[str, ...] = ()
    _by_name: dict[str, CompiledStep] = field(init=False, repr=False, compare=False)
    _order: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The saga core looks a step up on every event: a dict, not a scan.
        object.__setattr__(self, "_by_name", {step.name: step for step in self.steps})
        object.__setattr__(self, "_order", {step.name: i for i, step in enumerate(self.steps)})

    @property
    def version(self) -> int:
        """The flow's declared version (named by every result)."""
        return self.definition.version

    @property
    def deadline_ms(self) -> int | None:
        """The whole-flow deadline, if any."""
        return self.definition.deadline_ms

    def step(self, name: str) -> CompiledStep:
        """Return the step called ``name`` (KeyError if there is none)."""
        return self._by_name[name]

    def position(self, name: str) -> int:
        """The index of step ``name`` in :attr:`steps`."""
        return self._order[name]


def compile_flow(
    definition: FlowDefinition, *, catalog: LoadedCatalog, source: str = "<flow>"
) -> CompiledFlow:
    """Check ``definition`` against ``catalog`` and compile it.

    Raises:
        FlowLoadError: listing every problem, each naming the step and what to change.
    """
    problems: list[str] = []
    steps: dict[str, CompiledStep] = {}
    graph: dict[str, frozenset[str]] = {}
    step_names = frozenset(definition.steps)
    ordered = {other for step in definition.steps.values() for other in step.after}
    for name, step in definition.steps.items():
        compiled, reads = _compile_step(
            name,
            step,
            definition=definition,
            catalog=catalog,
            steps=step_names,
            side_effects=step.compensate is not None or bool(step.after) or name in ordered,
            problems=problems,
        )
        graph[name] = frozenset((reads & (step_names - {name})) | set(step.after))
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
    # The graph is known even for steps that failed to compile, so a cycle is
    # reported along with every other problem of the file.
    order = topological_order(graph, problems)
    if problems or result is None:
        details = "\n  ".join(problems)
        raise FlowLoadError(f"{source}: flow '{definition.name}' is invalid:\n  {details}")
    return CompiledFlow(
        name=definition.name,
        definition=definition,
        steps=tuple(steps[name] for name in order),
        result=result,
        input_validator=validator,
        source=source,
        warnings=tuple(flow_warnings(definition, steps, result)),
    )


def _compile_step(
    name: str,
    step: StepDefinition,
    *,
    definition: FlowDefinition,
    catalog: LoadedCatalog,
    steps: frozenset[str],
    side_effects: bool,
    problems: list[str],
) -> tuple[CompiledStep | None, frozenset[str]]:
    """Compile one step; also returns the names its expressions read (even on problems)."""
    where = f"step '{name}'"
    before = len(problems)
    if name in RESERVED_NAMES:
        problems.append(f"{where}: '{name}' is reserved for the expression context; rename it")
    _check_service(where, step.service, step.operation, catalog=catalog, problems=problems)
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
    for part, source in (("for_each", step.for_each), ("when", step.when)):
        if source is None:
            continue
        try:
            compiled[part] = compile_expression(source)
            _check_reads(
                f"{where} {part}",
                compiled[part].reads,
                allowed=others | {"input"},
                problems=problems,
            )
        except ExpressionError as error:
            problems.append(f"{where} {part}: {error}")
    for other in step.after:
        if other not in others:
            problems.append(f"{where} after: '{other}' is not another step of this flow")
    if "input" in compiled:
        _check_templates(
            where,
            step.service,
            step.operation,
            compiled["input"],
            catalog=catalog,
            problems=problems,
        )
    _check_step_settings(where, step, definition=definition, problems=problems)
    compensation = _compile_compensation(
        name, step, definition=definition, catalog=catalog, steps=steps, problems=problems
    )
    reads = frozenset[str]().union(
        *(value.reads for value in compiled.values() if hasattr(value, "reads"))
    )
    if len(problems) > before:
        return None, reads
    timeout_ms = step.timeout_ms or definition.defaults.timeout_ms
    return CompiledStep(
        name=name,
        service=step.service,
        operation=step.operation,
        input=compiled["input"],
        for_each=compiled.get("for_each"),
        output=compiled.get("output"),
        depends_on=frozenset((reads & others) | set(step.after)),
        optional=step.has_default,
        timeout_ms=timeout_ms,
        retry=resolve_retry(step.retry, definition.defaults.retry, attempts=DEFAULT_ATTEMPTS),
        default=step.default,
        when=compiled.get("when"),
        compensation=compensation,
        concurrency=step.concurrency,
        shares_calls=not side_effects,
    ), reads


def _compile_compensation(
    name: str,
    step: StepDefinition,
    *,
    definition: FlowDefinition,
    catalog: LoadedCatalog,
    steps: frozenset[str],
    problems: list[str],
) -> CompiledCompensation | None:
    undo = step.compensate
    if undo is None:
        return None
    where = f"step '{name}' compensate"
    before = len(problems)
    service = undo.service or step.service
    _check_service(where, service, undo.operation, catalog=catalog, problems=problems)
    allowed = steps | {"input"}
    if step.for_each is not None:
        allowed |= {"item", "index"}
    mapping: CompiledMapping | None = None
    try:
        mapping = compile_mapping(undo.input)
        _check_reads(f"{where} input", mapping.reads, allowed=allowed, problems=problems)
        _check_templates(
            where, service, undo.operation, mapping, catalog=catalog, problems=problems
        )
    except ExpressionError as error:
        problems.append(f"{where} input: {error}")
    if undo.retry is not None:
        _check_retry(where, undo.retry, problems)
    if mapping is None or len(problems) > before:
        return None
    # Compensations keep their own attempts (5 unless they say); the flow's
    # defaults.retry lends them only its backoff.
    defaults = definition.defaults.retry.model_copy(update={"attempts": None})
    return CompiledCompensation(
        service=service,
        operation=undo.operation,
        input=mapping,
        retry=resolve_retry(undo.retry, defaults, attempts=DEFAULT_COMPENSATION_ATTEMPTS),
        timeout_ms=undo.timeout_ms or step.timeout_ms or definition.defaults.timeout_ms,
    )


def _check_step_settings(
    where: str, step: StepDefinition, *, definition: FlowDefinition, problems: list[str]
) -> None:
    if step.concurrency is not None and step.for_each is None:
        problems.append(
            f"{where}: concurrency caps the calls of a for_each step; "
            "this step makes one call, so remove it"
        )
    if step.optional and "default" in step.model_fields_set and step.default is not None:
        problems.append(
            f"{where}: optional: true means default: null, but default is also set; keep one"
        )
    if step.retry is not None:
        _check_retry(where, step.retry, problems)
    _check_retry("defaults", definition.defaults.retry, problems)


def _check_retry(where: str, policy: RetryPolicy, problems: list[str]) -> None:
    if (
        policy.backoff_ms is not None
        and policy.max_backoff_ms is not None
        and policy.max_backoff_ms < policy.backoff_ms
    ):
        message = (
            f"{where} retry: max_backoff_ms ({policy.max_backoff_ms}) is below backoff_ms "
            f"({policy.backoff_ms}); raise max_backoff_ms or lower backoff_ms"
        )
        if message not in problems:
            problems.append(message)


def _check_service(
    where: str, service: str, operation: str, *, catalog: LoadedCatalog, problems: list[str]
) -> None:
    services = catalog.catalog.services
    if service not in services:
        known = ", ".join(sorted(services)) or "none"
        problems.append(
            f"{where}: unknown service '{service}' (services in {catalog.source}: {known})"
        )
        return
    operations = catalog.operations_of(service)
    if operations is not None and operation not in operations:
        known = ", ".join(sorted(operations))
        problems.append(
            f"{where}: service '{service}' has no operation '{operation}' (it has: {known})"
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
    service_name: str,
    operation_name: str,
    mapping: CompiledMapping,
    *,
    catalog: LoadedCatalog,
    problems: list[str],
) -> None:
    service = catalog.catalog.services.get(service_name)
    provided = mapping.field_names()
    if not isinstance(service, HttpService) or provided is None:
        return
    operation = service.operations.get(operation_name)
    if operation is None:
        return
    needed = set(compile_text(operation.path).fields)
    for template in (*operation.query.values(), *operation.headers.values()):
        needed |= compile_text(template).fields
    needed |= compile_json(operation.body).fields
    for missing in sorted(needed - provided):
        problems.append(
            f"{where}: {service_name}.{operation_name} needs input field '{missing}', "
            "which the step's input does not set"
        )
