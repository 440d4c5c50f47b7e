"""The adapter SDK: a service adapter is a few typed async functions.

::

    from pydantic import BaseModel
    from handlers import BusinessError, Service

    inventory = Service("inventory")

    class StockQuery(BaseModel):
        product_ids: list[str]

    class StockLevels(BaseModel):
        levels: list[ProductStock]

    @inventory.operation("stock_levels")
    async def stock_levels(query: StockQuery) -> StockLevels:
        ...

The same ``inventory`` object runs as a remote worker over Kafka
(``orchestrator adapter mymodule:inventory``) or is loaded in-process by a
catalog entry ``{kind: python, adapter: "mymodule:inventory"}``.
"""

from __future__ import annotations

import logging
import re
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

from handlers.errors import AdapterSetupError, BusinessError
from handlers.outcome import CallOutcome

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,99}$")

AdapterFunction = Callable[[Any], Awaitable[Any]]
F = TypeVar("F", bound=AdapterFunction)


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation of a service: the function and its input/output validators."""

    name: str
    function: AdapterFunction
    input_adapter: TypeAdapter[Any]
    output_adapter: TypeAdapter[Any]

    async def invoke(self, payload: Any) -> CallOutcome:
        """Validate ``payload``, call the function, and report the outcome.

        Never raises: a bad payload is a business error (``input.invalid``), an
        unexpected exception a technical one (``adapter.exception``), an output the
        return type cannot serialise too (``adapter.invalid_output``).
        """
        try:
            argument = self.input_adapter.validate_python(payload)
        except ValidationError as error:
            return CallOutcome.business_error(
                "input.invalid",
                f"{self.name}: {error.error_count()} invalid field(s): {_first(error)}",
            )
        try:
            result = await self.function(argument)
        except BusinessError as error:
            return CallOutcome.business_error(error.code, error.message)
        except Exception as error:
            logger.exception("adapter operation %s raised", self.name)
            return CallOutcome.technical_error(
                "adapter.exception", f"{type(error).__name__}: {error}"
            )
        try:
            return CallOutcome.ok(self.output_adapter.dump_python(result, mode="json"))
        except Exception as error:
            return CallOutcome.technical_error(
                "adapter.invalid_output",
                f"{self.name} returned a value its return type cannot serialise: {error}",
            )


def _first(error: ValidationError) -> str:
    problem = error.errors(include_url=False)[0]
    location = ".".join(str(part) for part in problem["loc"]) or "input"
    return f"{location}: {problem['msg']}"


class Service:
    """A named service adapter; its operations are registered with a decorator."""

    def __init__(self, name: str, *, command_topic: str | None = None) -> None:
        if not _NAME.fullmatch(name):
            raise AdapterSetupError(
                f"Service name {name!r} is invalid: use lowercase letters, digits, '_', '-' or '.'."
            )
        self.name = name
        self.command_topic = command_topic or f"{name}.commands"
        self._operations: dict[str, Operation] = {}

    @classmethod
    def with_command_topic(cls, service: Service, command_topic: str) -> Service:
        """A copy of ``service`` (same operations) listening on another command topic."""
        copy = cls(service.name, command_topic=command_topic)
        copy._operations = dict(service._operations)
        return copy

    @property
    def operations(self) -> dict[str, Operation]:
        """The registered operations by name."""
        return dict(self._operations)

    def operation(self, name: str | None = None) -> Callable[[F], F]:
        """Register an async function ``(input) -> output`` as an operation.

        The first parameter's annotation validates the call input, the return
        annotation serialises the output (pydantic models or any pydantic type).
        """

        def register(function: F) -> F:
            operation_name = name or function.__name__
            if operation_name in self._operations:
                raise AdapterSetupError(
                    f"Service {self.name!r} already has an operation {operation_name!r}; "
                    "give the new one another name."
                )
            self._operations[operation_name] = _build_operation(operation_name, function)
            return function

        return register

    async def invoke(self, operation: str, payload: Any) -> CallOutcome:
        """Run ``operation`` with ``payload`` in-process."""
        registered = self._operations.get(operation)
        if registered is None:
            known = ", ".join(sorted(self._operations)) or "none"
            return CallOutcome.business_error(
                "operation.unknown",
                f"service {self.name!r} has no operation {operation!r} (it has: {known})",
            )
        return await registered.invoke(payload)


def _build_operation(name: str, function: AdapterFunction) -> Operation:
    hints = typing.get_type_hints(function)
    parameters = [key for key in hints if key != "return"]
    if len(parameters) != 1 or "return" not in hints:
        raise AdapterSetupError(
            f"Adapter operation {name!r} ({function.__qualname__}) must take exactly one annotated "
            "parameter and annotate its return type, e.g. `async def op(query: Query) -> Answer`."
        )
    return Operation(
        name=name,
        function=function,
        input_adapter=TypeAdapter(hints[parameters[0]]),
        output_adapter=TypeAdapter(hints["return"]),
    )
