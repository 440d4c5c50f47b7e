"""The flow definition: what a flow file (YAML or JSON) contains.

A flow is a set of named steps. Each step calls one operation of one service with
an input computed by JMESPath expressions over the flow's input and the outputs of
earlier steps. A step that reads another step's output depends on it; steps with
no dependency between them run concurrently. ``for_each`` fans a step out to one
call per element of a list. ``result`` composes the final data.

Expression context: ``input`` (the flow input), every earlier step by name (its
output), and inside ``for_each`` steps ``item`` and ``index``; in ``output``
mappings, ``reply`` is the adapter's raw reply.

Saga semantics are declared here too: ``retry`` (per step, merged over
``defaults.retry``), ``compensate`` (how to undo a step when the saga fails),
``when`` (a condition; false skips the step), ``default`` (the value a step that
fails for good yields instead of failing the saga), ``concurrency`` (a cap on a
``for_each`` step's calls in flight) and ``deadline_ms`` (the whole flow's).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, JsonValue, StringConstraints
from typing_extensions import TypeAliasType

from contracts.base import Contract

Mapping = TypeAliasType("Mapping", "str | dict[str, Mapping]")
"""A JMESPath expression, or an object whose leaves are JMESPath expressions."""

STEP_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
FLOW_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,199}$"
StepName = Annotated[str, StringConstraints(pattern=STEP_NAME_PATTERN)]
"""Lowercase letters, digits and '_': call ids (``step#index``) and correlation ids
(``request:call:attempt``) rely on a step name holding no '#' or ':'."""
RESERVED_NAMES = frozenset({"input", "item", "index", "reply"})
"""Names of the expression context that a step cannot take."""

DEFAULT_STEP_TIMEOUT_MS = 10_000
DEFAULT_ATTEMPTS = 1
"""Forward steps are not retried unless the flow says so: a retry repeats a call
whose downstream may not honour idempotency keys."""
DEFAULT_COMPENSATION_ATTEMPTS = 5
DEFAULT_BACKOFF_MS = 100
DEFAULT_MULTIPLIER = 2.0
DEFAULT_MAX_BACKOFF_MS = 5_000
MAX_ATTEMPTS = 100
MAX_BACKOFF_MS = 600_000
MAX_FLOW_DEADLINE_MS = 86_400_000
MAX_STEP_TIMEOUT_MS = 3_600_000
"""An hour: a saga waiting longer belongs in a workflow engine, not an API composition."""


class RetryPolicy(Contract):
    """How often, and how far apart, a failed call is tried again.

    Every field is optional: a step's ``retry`` is merged over ``defaults.retry``,
    which is merged over the built-in defaults (1 attempt, 100 ms, x2.0, 5000 ms
    for forward steps; 5 attempts for compensations). The wait before attempt
    ``n + 1`` is drawn uniformly from ``[0, min(max_backoff_ms, backoff_ms *
    multiplier ** (n - 1))]`` ("full jitter"), and is never shorter than a
    ``Retry-After`` the downstream sent.
    """

    attempts: int | None = Field(
        default=None, ge=1, le=MAX_ATTEMPTS, description="Tries in all; 1 means no retry."
    )
    backoff_ms: int | None = Field(
        default=None, ge=0, le=MAX_BACKOFF_MS, description="Cap of the first wait."
    )
    multiplier: float | None = Field(
        default=None, ge=1.0, le=10.0, description="Growth of the cap per attempt."
    )
    max_backoff_ms: int | None = Field(
        default=None, ge=0, le=MAX_BACKOFF_MS, description="The cap never exceeds this."
    )


class CompensationDefinition(Contract):
    """How to undo a step that succeeded, should the saga fail later.

    The input may read the step's own output by the step's name (for a
    ``for_each`` step: the output of the one call being undone, with ``item`` and
    ``index`` in scope), besides ``input`` and the other steps' outputs.
    """

    service: str | None = Field(
        default=None, min_length=1, description="Defaults to the step's own service."
    )
    operation: str = Field(min_length=1)
    input: Mapping = Field(default_factory=dict)
    retry: RetryPolicy | None = Field(
        default=None, description="Merged over defaults.retry; attempts default to 5."
    )
    timeout_ms: int | None = Field(
        default=None, gt=0, le=MAX_STEP_TIMEOUT_MS, description="Defaults to the step's."
    )


class StepDefinition(Contract):
    """One step: a call (or one call per ``for_each`` item) to a service operation."""

    service: str = Field(min_length=1, description="Service name from the service catalog.")
    operation: str = Field(min_length=1, description="Operation of that service.")
    input: Mapping = Field(default_factory=dict, description="The call's input.")
    for_each: str | None = Field(
        default=None, description="Expression giving a list: one call per element (`item`)."
    )
    output: Mapping | None = Field(
        default=None, description="Maps each reply (`reply`) to the step's output."
    )
    after: list[str] = Field(
        default_factory=list, description="Steps to wait for beyond those the expressions read."
    )
    optional: bool = Field(
        default=False,
        description="Same as `default: null`: a failed call yields null.",
    )
    timeout_ms: int | None = Field(
        default=None,
        gt=0,
        le=MAX_STEP_TIMEOUT_MS,
        description="No reply within this long fails the attempt.",
    )
    retry: RetryPolicy | None = Field(default=None, description="Merged over defaults.retry.")
    compensate: CompensationDefinition | None = Field(
        default=None, description="How to undo this step if the saga fails after it succeeded."
    )
    when: str | None = Field(
        default=None,
        description="Expression; when false (or null, empty) the step is skipped "
        "and readers see null.",
    )
    default: Any = Field(
        default=None,
        description="The value a call that fails for good yields; the result is then "
        "complete: false. Only when set (null counts as set).",
    )
    concurrency: int | None = Field(
        default=None, ge=1, le=10_000, description="At most this many for_each calls in flight."
    )

    @property
    def has_default(self) -> bool:
        """Whether a failure yields a value (``default`` set, or ``optional``)."""
        return self.optional or "default" in self.model_fields_set


class FlowDefaults(Contract):
    """Defaults that apply to every step of a flow unless the step overrides them."""

    timeout_ms: int = Field(default=DEFAULT_STEP_TIMEOUT_MS, gt=0, le=MAX_STEP_TIMEOUT_MS)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)


class FlowDefinition(Contract):
    """A declared flow, as loaded from a flow file or built in Python."""

    schema_version: Literal[1] = 1
    name: str = Field(pattern=FLOW_NAME_PATTERN)
    version: int = Field(default=1, ge=1, description="Named by every result of this flow.")
    description: str = ""
    deadline_ms: int | None = Field(
        default=None,
        gt=0,
        le=MAX_FLOW_DEADLINE_MS,
        description="Whole-flow deadline: past it the saga fails (step.deadline) and compensates.",
    )
    input_schema: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object"},
        description="JSON Schema (2020-12) the request input must satisfy.",
    )
    defaults: FlowDefaults = Field(default_factory=FlowDefaults)
    steps: dict[StepName, StepDefinition] = Field(
        min_length=1,
        # The key pattern alone renders as patternProperties, which let any other key
        # through: the file schema refuses every step name the loader refuses.
        json_schema_extra={
            "additionalProperties": False,
            "propertyNames": {"not": {"enum": list[JsonValue](sorted(RESERVED_NAMES))}},
        },
    )
    result: Mapping = Field(description="Composes the result data from input and step outputs.")
