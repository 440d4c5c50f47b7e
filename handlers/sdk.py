"""The adapter SDK: a service adapter is a few typed async functions.

::

    from pydantic import BaseModel
    from handlers import BusinessError, CallContext, Service

    inventory = Service("inventory")

    class StockQuery(BaseModel):
        product_ids: list[str]

    class StockLevels(BaseModel):
        levels: list[ProductStock]

    @inventory.operation("stock_levels")
    async def stock_levels(query: StockQuery) -> StockLevels:
        ...

    @inventory.operation  # registered as "reserve"
    async def reserve(order: Reservation, ctx: CallContext) -> Reserved:
        ...  # pass ctx.idempotency_key to the downstream API

A read that is safe to reuse can declare a cache for in-process use,
``@inventory.operation("stock_levels", cache_ttl_ms=5_000)``: the coordinator
keeps its ``ok`` answers that long and makes identical calls in flight once. Its
answer must then depend on its input only (not on the context). A remote worker
ignores it: over Kafka an adapter caches as it sees fit.

An operation takes the call input, and optionally a second parameter annotated
:class:`~handlers.context.CallContext` (request id, call, attempt, idempotency
key, deadline). The same ``inventory`` object runs as a remote worker over Kafka
(``orchestrator adapter mymodule:inventory``) or is loaded in-process by a
catalog entry ``{kind: python, adapter: "mymodule:inventory"}``.
"""

from __future__ import annotations

import inspect
import logging
import re
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from pydantic import TypeAdapter, ValidationError

from handlers.context import CallContext
from handlers.errors import AdapterSetupError, BusinessError
from handlers.outcome import CallOutcome

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,99}$")

AdapterFunction = Callable[..., Awaitable[Any]]
"""``async def op(input: In) -> Out`` or ``async def op(input: In, ctx: CallContext) -> Out``."""
F = TypeVar("F", bound=AdapterFunction)

_SHAPES = (
    "`async def op(query: Query) -> Answer` or "
    "`async def op(query: Query, ctx: CallContext) -> Answer`"
)


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation of a service: the function and its input/output validators."""

    name: str
    function: AdapterFunction
    input_adapter: TypeAdapter[Any]
    output_adapter: TypeAdapter[Any]
    takes_context: bool = False
    """Whether the function declares a second parameter, the :class:`CallContext`."""
    cache_ttl_ms: int | None = None
    """In-process only: how long the coordinator reuses an ok answer (None: never)."""

    async def invoke(self, payload: Any, context: CallContext) -> CallOutcome:
        """Validate ``payload``, call the function, and report the outcome.

        ``context`` is passed to a function that declares a ``CallContext`` parameter.

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
            if self.takes_context:
                result = await self.function(argument, context)
            else:
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

    @overload
    def operation(self, name: F) -> F: ...

    @overload
    def operation(
        self, name: str | None = None, *, cache_ttl_ms: int | None = None
    ) -> Callable[[F], F]: ...

    def operation(
        self, name: str | F | None = None, *, cache_ttl_ms: int | None = None
    ) -> F | Callable[[F], F]:
        """Register an async function as an operation.

        Use it bare (``@service.operation``, registered under the function's
        name), or with a name (``@service.operation("quote")``), or empty
        (``@service.operation()``). The function is
        ``async def op(input: In) -> Out`` or
        ``async def op(input: In, ctx: CallContext) -> Out``: the first
        parameter's annotation validates the call input, the return annotation
        serialises the output (pydantic models or any pydantic type), and a
        second parameter annotated :class:`CallContext` receives the call's context.

        ``cache_ttl_ms`` (a whole number of ms above 0) marks a safe read whose
        answers the coordinator may reuse when it runs the service in-process:
        ``@service.operation("quote", cache_ttl_ms=5_000)``.
        """
        if cache_ttl_ms is not None and (
            isinstance(cache_ttl_ms, bool) or not isinstance(cache_ttl_ms, int) or cache_ttl_ms < 1
        ):
            raise AdapterSetupError(
                f"Service {self.name!r}: cache_ttl_ms must be a whole number of milliseconds "
                f"above 0, not {cache_ttl_ms!r}; write e.g. `cache_ttl_ms=5_000`, or leave it "
                "out to never cache the operation."
            )
        if name is None or isinstance(name, str):
            chosen = name

            def register(function: F) -> F:
                self._register(chosen, function, cache_ttl_ms=cache_ttl_ms)
                return function

            return register
        if callable(name):
            self._register(None, name, cache_ttl_ms=cache_ttl_ms)
            return name
        raise AdapterSetupError(
            f"Service {self.name!r}: @operation takes an operation name (a str) or nothing, "
            f"not {name!r}; write `@service.operation`, "
            '`@service.operation()` or `@service.operation("name")`.'
        )

    def _register(self, name: str | None, function: Any, *, cache_ttl_ms: int | None) -> None:
        if not callable(function):
            raise AdapterSetupError(
                f"Service {self.name!r}: @operation decorates an async function, "
                f"not {function!r}; put it right above `async def ...`."
            )
        operation_name = name or getattr(function, "__name__", None)
        if not isinstance(operation_name, str) or not operation_name:
            raise AdapterSetupError(
                f"Service {self.name!r}: {function!r} has no __name__ to register it under; "
                'name the operation: `@service.operation("name")`.'
            )
        if operation_name in self._operations:
            raise AdapterSetupError(
                f"Service {self.name!r} already has an operation {operation_name!r}; "
                "give the new one another name."
            )
        self._operations[operation_name] = _build_operation(
            operation_name, function, cache_ttl_ms=cache_ttl_ms
        )

    async def invoke(
        self, operation: str, payload: Any, context: CallContext | None = None
    ) -> CallOutcome:
        """Run ``operation`` with ``payload`` in-process.

        ``context`` is what an operation declaring a ``CallContext`` parameter
        receives; calling directly (in a test) without one gives it
        ``CallContext.for_test(call=operation)`` (idempotency key
        ``test-request:<operation>``, attempt 1, no deadline to speak of).
        """
        registered = self._operations.get(operation)
        if registered is None:
            known = ", ".join(sorted(self._operations)) or "none"
            return CallOutcome.business_error(
                "operation.unknown",
                f"service {self.name!r} has no operation {operation!r} (it has: {known})",
            )
        if context is None:
            context = CallContext.for_test(call=operation)
        return await registered.invoke(payload, context)


def _build_operation(
    name: str, function: AdapterFunction, *, cache_ttl_ms: int | None = None
) -> Operation:
    where = f"Adapter operation {name!r} ({getattr(function, '__qualname__', repr(function))})"
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError) as error:
        raise AdapterSetupError(
            f"{where} has no signature to read ({error}); declare it as {_SHAPES}."
        ) from error
    try:
        hints = typing.get_type_hints(function)
    except Exception as error:
        raise AdapterSetupError(
            f"{where}: its annotations cannot be read ({type(error).__name__}: {error}); "
            "make it an `async def` whose annotated types are imported at module level "
            "(not only under TYPE_CHECKING)."
        ) from error
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    problem = None
    if not 1 <= len(parameters) <= 2 or any(p.kind not in positional for p in parameters):
        problem = f"it takes {inspect.Signature(parameters)}"
    elif parameters[0].name not in hints:
        problem = f"its input parameter {parameters[0].name!r} has no annotation"
    elif hints[parameters[0].name] is CallContext:
        problem = "its first parameter is the CallContext; put the input first, the context second"
    elif len(parameters) == 2 and hints.get(parameters[1].name) is not CallContext:
        problem = (
            f"its second parameter {parameters[1].name!r} is not annotated `CallContext` "
            "(from handlers import CallContext)"
        )
    elif "return" not in hints:
        problem = "its return type is not annotated"
    if problem is not None:
        raise AdapterSetupError(f"{where} must be declared as {_SHAPES}, but {problem}.")
    return Operation(
        name=name,
        function=function,
        input_adapter=TypeAdapter(hints[parameters[0].name]),
        output_adapter=TypeAdapter(hints["return"]),
        takes_context=len(parameters) == 2,
        cache_ttl_ms=cache_ttl_ms,
    )
