"""The flow definition: what a flow file (YAML or JSON) contains.

A flow is a set of named steps. Each step calls one operation of one service with
an input computed by JMESPath expressions over the flow's input and the outputs of
earlier steps. A step that reads another step's output depends on it; steps with
no dependency between them run concurrently. ``for_each`` fans a step out to one
call per element of a list. ``result`` composes the final data.

Expression context: ``input`` (the flow input), every earlier step by name (its
output), and inside ``for_each`` steps ``item`` and ``index``; in ``output``
mappings, ``reply`` is the adapter's raw reply.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints
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
MAX_STEP_TIMEOUT_MS = 3_600_000
"""An hour: a saga waiting longer belongs in a workflow engine, not an API composition."""


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
        description="A failed call yields null instead of failing the request.",
    )
    timeout_ms: int | None = Field(
        default=None,
        gt=0,
        le=MAX_STEP_TIMEOUT_MS,
        description="No reply within this long fails the call.",
    )


class FlowDefaults(Contract):
    """Defaults that apply to every step of a flow unless the step overrides them."""

    timeout_ms: int = Field(default=DEFAULT_STEP_TIMEOUT_MS, gt=0, le=MAX_STEP_TIMEOUT_MS)


class FlowDefinition(Contract):
    """A declared flow, as loaded from a flow file or built in Python."""

    schema_version: Literal[1] = 1
    name: str = Field(pattern=FLOW_NAME_PATTERN)
    description: str = ""
    input_schema: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object"},
        description="JSON Schema (2020-12) the request input must satisfy.",
    )
    defaults: FlowDefaults = Field(default_factory=FlowDefaults)
    steps: dict[StepName, StepDefinition] = Field(min_length=1)
    result: Mapping = Field(description="Composes the result data from input and step outputs.")
