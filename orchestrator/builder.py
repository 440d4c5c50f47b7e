"""Build a flow in Python; the result is the same model a flow file gives.

::

    flow = FlowBuilder("order-details", input_schema={...})
    order = flow.step("order", service="orders", operation="get_order",
                      input={"order_id": "input.order_id"})
    flow.step("user", service="users", operation="get_user",
              input={"user_id": order.path("user_id")})
    definition = flow.result({"user": "user"}).build()

Saga settings take the contract models::

    flow.step("reserve", service="inventory", operation="reserve", input={...},
              retry=RetryPolicy(attempts=5),
              compensate=CompensationDefinition(operation="release",
                                                input={"id": "reserve.reservation_id"}))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from contracts.flow import (
    CompensationDefinition,
    FlowDefaults,
    FlowDefinition,
    Mapping,
    RetryPolicy,
    StepDefinition,
)
from orchestrator.errors import FlowLoadError
from orchestrator.validation_messages import describe_validation_error

NO_DEFAULT: Any = object()
"""Marks a step without a ``default`` (its failure fails the saga)."""


@dataclass(frozen=True, slots=True)
class StepRef:
    """A handle on a declared step, to refer to its output without typing strings."""

    name: str

    def path(self, *fields: str) -> str:
        """An expression reading ``fields`` of this step's output, e.g. ``order.user_id``."""
        return ".".join((self.name, *fields))

    def __str__(self) -> str:
        return self.name


class FlowBuilder:
    """Declare a flow step by step; :meth:`build` validates it like a flow file."""

    def __init__(
        self,
        name: str,
        *,
        description: str = "",
        input_schema: dict[str, Any] | None = None,
        timeout_ms: int | None = None,
        version: int = 1,
        deadline_ms: int | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._fields: dict[str, Any] = {
            "name": name,
            "description": description,
            "version": version,
            "deadline_ms": deadline_ms,
        }
        if input_schema is not None:
            self._fields["input_schema"] = input_schema
        defaults: dict[str, Any] = {}
        if timeout_ms is not None:
            defaults["timeout_ms"] = timeout_ms
        if retry is not None:
            defaults["retry"] = retry
        if defaults:
            self._fields["defaults"] = FlowDefaults(**defaults)
        self._steps: dict[str, StepDefinition] = {}
        self._result: Mapping | None = None

    def step(
        self,
        name: str,
        *,
        service: str,
        operation: str,
        input: Mapping | None = None,
        for_each: str | None = None,
        output: Mapping | None = None,
        after: list[StepRef | str] | None = None,
        optional: bool = False,
        timeout_ms: int | None = None,
        retry: RetryPolicy | None = None,
        compensate: CompensationDefinition | None = None,
        when: str | None = None,
        default: Any = NO_DEFAULT,
        concurrency: int | None = None,
    ) -> StepRef:
        """Add a step and return a reference to it.

        ``default`` is the value a call that fails for good yields; leave it out
        for a step whose failure fails the saga (``None`` is a default of null).
        """
        if name in self._steps:
            raise FlowLoadError(f"flow '{self._fields['name']}' already has a step '{name}'.")
        extra: dict[str, Any] = {} if default is NO_DEFAULT else {"default": default}
        try:
            self._steps[name] = StepDefinition(
                service=service,
                operation=operation,
                input=input if input is not None else {},
                for_each=for_each,
                output=output,
                after=[str(other) for other in after or ()],
                optional=optional,
                timeout_ms=timeout_ms,
                retry=retry,
                compensate=compensate,
                when=when,
                concurrency=concurrency,
                **extra,
            )
        except ValidationError as error:
            details = "\n  ".join(describe_validation_error(error))
            raise FlowLoadError(
                f"flow '{self._fields['name']}', step '{name}' is invalid:\n  {details}"
            ) from None
        return StepRef(name)

    def result(self, mapping: Mapping) -> FlowBuilder:
        """Set the result mapping."""
        self._result = mapping
        return self

    def build(self) -> FlowDefinition:
        """Return the validated flow definition."""
        if self._result is None:
            raise FlowLoadError(f"flow '{self._fields['name']}' has no result: call .result(...).")
        try:
            return FlowDefinition(**self._fields, steps=self._steps, result=self._result)
        except ValidationError as error:
            details = "\n  ".join(describe_validation_error(error))
            raise FlowLoadError(f"flow '{self._fields['name']}' is invalid:\n  {details}") from None
