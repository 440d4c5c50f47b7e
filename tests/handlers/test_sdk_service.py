"""The adapter SDK: registering operations and invoking them in-process."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from handlers import CallContext
from handlers.errors import AdapterSetupError, BusinessError
from handlers.sdk import Service


class Query(BaseModel):
    sku: str
    qty: int = 1


class Answer(BaseModel):
    sku: str
    total: float


def make_service() -> Service:
    shop = Service("shop")

    @shop.operation("price")
    async def price(query: Query) -> Answer:
        if query.sku == "nope":
            raise BusinessError("sku.unknown", f"no sku {query.sku}")
        if query.sku == "bare":
            raise BusinessError("sku.bare")
        if query.sku == "crash":
            raise RuntimeError("disk on fire")
        return Answer(sku=query.sku, total=2.5 * query.qty)

    @shop.operation()
    async def echo_list(values: list[int]) -> list[int]:
        return [value * 2 for value in values]

    return shop


def test_decorator_registers_operations_by_name() -> None:
    shop = make_service()

    assert sorted(shop.operations) == ["echo_list", "price"]
    assert shop.operations["price"].name == "price"
    assert shop.command_topic == "shop.commands"


def test_operations_is_a_copy() -> None:
    shop = make_service()
    shop.operations.pop("price")

    assert "price" in shop.operations


@pytest.mark.parametrize(
    ("operation", "payload", "output"),
    [
        ("price", {"sku": "a", "qty": 4}, {"sku": "a", "total": 10.0}),
        ("price", {"sku": "a"}, {"sku": "a", "total": 2.5}),
        ("price", {"sku": "a", "qty": "3"}, {"sku": "a", "total": 7.5}),
        ("echo_list", [1, 2], [2, 4]),
    ],
)
async def test_invoke_ok_returns_json_ready_output(
    operation: str, payload: Any, output: Any
) -> None:
    outcome = await make_service().invoke(operation, payload)

    assert outcome.status == "ok"
    assert outcome.output == output
    assert type(outcome.output) is type(output)  # dumped, not a pydantic model


@pytest.mark.parametrize(
    ("payload", "location"),
    [({}, "sku: Field required"), ({"sku": "a", "qty": "many"}, "qty:"), (None, "input:")],
)
async def test_invalid_input_is_a_business_error(payload: Any, location: str) -> None:
    outcome = await make_service().invoke("price", payload)

    assert (outcome.status, outcome.error_code) == ("business_error", "input.invalid")
    assert outcome.error_message.startswith("price: 1 invalid field(s): ")
    assert location in outcome.error_message


@pytest.mark.parametrize(
    ("sku", "status", "code", "message"),
    [
        ("nope", "business_error", "sku.unknown", "no sku nope"),
        ("bare", "business_error", "sku.bare", "sku.bare"),
        ("crash", "technical_error", "adapter.exception", "RuntimeError: disk on fire"),
    ],
)
async def test_raised_errors_become_outcomes(
    sku: str, status: str, code: str, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    outcome = await make_service().invoke("price", {"sku": sku})

    assert (outcome.status, outcome.error_code, outcome.error_message) == (status, code, message)
    assert ("adapter operation price raised" in caplog.text) == (status == "technical_error")


async def test_unknown_operation_lists_known_ones() -> None:
    outcome = await make_service().invoke("refund", {})

    assert (outcome.status, outcome.error_code) == ("business_error", "operation.unknown")
    assert "(it has: echo_list, price)" in outcome.error_message


def test_duplicate_operation_name_is_a_setup_error() -> None:
    shop = make_service()

    with pytest.raises(AdapterSetupError, match="already has an operation 'price'"):

        @shop.operation("price")
        async def other(query: Query) -> Answer:
            raise NotImplementedError


async def _no_return(query: Query):  # type: ignore[no-untyped-def]
    return query


async def _no_param_annotation(query) -> Answer:  # type: ignore[no-untyped-def]
    raise NotImplementedError


async def _no_params() -> Answer:
    raise NotImplementedError


async def _second_not_context(query: Query, extra: int) -> Answer:
    raise NotImplementedError


async def _second_not_annotated(query: Query, ctx) -> Answer:  # type: ignore[no-untyped-def]
    raise NotImplementedError


async def _three_params(query: Query, ctx: CallContext, extra: int) -> Answer:
    raise NotImplementedError


async def _context_first(ctx: CallContext, query: Query) -> Answer:
    raise NotImplementedError


async def _context_only(ctx: CallContext) -> Answer:
    raise NotImplementedError


async def _keyword_context(query: Query, *, ctx: CallContext) -> Answer:
    raise NotImplementedError


async def _var_args(*queries: Query) -> Answer:
    raise NotImplementedError


@pytest.mark.parametrize(
    ("function", "problem"),
    [
        (_no_return, "its return type is not annotated"),
        (_no_param_annotation, "its input parameter 'query' has no annotation"),
        (_no_params, "it takes ()"),
        (_second_not_context, "its second parameter 'extra' is not annotated `CallContext`"),
        (_second_not_annotated, "its second parameter 'ctx' is not annotated `CallContext`"),
        (_three_params, "it takes (query: 'Query', ctx: 'CallContext', extra: 'int')"),
        (_context_first, "its first parameter is the CallContext"),
        (_context_only, "its first parameter is the CallContext"),
        (_keyword_context, "it takes (query: 'Query', *, ctx: 'CallContext')"),
        (_var_args, "it takes (*queries: 'Query')"),
    ],
)
def test_a_bad_signature_is_a_setup_error_naming_the_fix(function: Any, problem: str) -> None:
    shop = Service("shop")

    with pytest.raises(AdapterSetupError) as raised:
        shop.operation("op")(function)

    message = str(raised.value)
    assert message.startswith(f"Adapter operation 'op' ({function.__qualname__}) must be ")
    assert "`async def op(query: Query) -> Answer`" in message
    assert "`async def op(query: Query, ctx: CallContext) -> Answer`" in message
    assert problem in message
    assert shop.operations == {}


def test_a_bad_signature_fails_at_declaration_with_the_bare_decorator_too() -> None:
    shop = Service("shop")

    with pytest.raises(AdapterSetupError, match="second parameter 'extra'"):

        @shop.operation
        async def op(query: Query, extra: int) -> Answer:
            raise NotImplementedError

    assert shop.operations == {}


def test_an_annotation_that_cannot_be_resolved_is_a_setup_error() -> None:
    async def op(query: Any) -> Answer:
        raise NotImplementedError

    op.__annotations__ = {"query": "Query", "return": "OnlyUnderTypeChecking"}
    shop = Service("shop")

    with pytest.raises(AdapterSetupError, match=r"annotations cannot be read \(NameError"):
        shop.operation(op)


def test_the_bare_decorator_registers_under_the_function_name() -> None:
    shop = Service("shop")

    @shop.operation
    async def quote(query: Query) -> Answer:
        return Answer(sku=query.sku, total=1.0)

    assert list(shop.operations) == ["quote"]
    assert shop.operations["quote"].function is quote
    assert quote.__name__ == "quote"  # the function itself, not a wrapper


async def test_a_bare_decorated_operation_runs() -> None:
    shop = Service("shop")

    @shop.operation
    async def quote(query: Query, ctx: CallContext) -> Answer:
        return Answer(sku=f"{query.sku}@{ctx.call}", total=2.0 * query.qty)

    outcome = await shop.invoke("quote", {"sku": "a", "qty": 3})

    assert (outcome.status, outcome.output) == ("ok", {"sku": "a@quote", "total": 6.0})


def test_the_decorator_with_a_name_keeps_working() -> None:
    shop = Service("shop")

    @shop.operation("quote")
    async def first(query: Query) -> Answer:
        raise NotImplementedError

    @shop.operation(name="price")
    async def second(query: Query) -> Answer:
        raise NotImplementedError

    @shop.operation()
    async def third(query: Query) -> Answer:
        raise NotImplementedError

    assert shop.operations["quote"].function is first
    assert shop.operations["price"].function is second
    assert shop.operations["third"].function is third


@pytest.mark.parametrize("argument", [42, b"quote", ["quote"]])
def test_the_decorator_given_neither_a_name_nor_a_function_fails(argument: Any) -> None:
    shop = Service("shop")

    with pytest.raises(AdapterSetupError, match="@operation takes an operation name"):
        shop.operation(argument)
    assert shop.operations == {}


def test_decorating_something_not_callable_fails() -> None:
    shop = Service("shop")

    with pytest.raises(AdapterSetupError, match="decorates an async function, not 42"):
        shop.operation("op")(42)  # type: ignore[type-var]


def context_service(seen: list[CallContext]) -> Service:
    shop = Service("shop")

    @shop.operation("reserve")
    async def reserve(query: Query, ctx: CallContext) -> Answer:
        seen.append(ctx)
        return Answer(sku=ctx.idempotency_key, total=float(ctx.attempt))

    return shop


async def test_a_two_parameter_operation_receives_the_given_context() -> None:
    seen: list[CallContext] = []
    context = CallContext(
        request_id="r-9",
        call="lines#4",
        attempt=3,
        idempotency_key="r-9:lines#4",
        deadline_ms=1_700_000_000_000,
        flow="orders",
        step="lines",
    )

    outcome = await context_service(seen).invoke("reserve", {"sku": "a"}, context)

    assert seen == [context]
    assert (outcome.status, outcome.output) == ("ok", {"sku": "r-9:lines#4", "total": 3.0})


async def test_a_direct_call_without_a_context_gets_a_test_context() -> None:
    seen: list[CallContext] = []

    outcome = await context_service(seen).invoke("reserve", {"sku": "a"})

    assert seen == [CallContext.for_test(call="reserve")]
    assert seen[0].idempotency_key == "test-request:reserve"
    assert outcome.output == {"sku": "test-request:reserve", "total": 1.0}


async def test_invalid_input_does_not_reach_a_context_operation() -> None:
    seen: list[CallContext] = []

    outcome = await context_service(seen).invoke("reserve", {"qty": 1})

    assert (outcome.status, outcome.error_code) == ("business_error", "input.invalid")
    assert seen == []


async def test_a_one_parameter_operation_ignores_the_context() -> None:
    outcome = await make_service().invoke(
        "price", {"sku": "a", "qty": 2}, CallContext.for_test(request_id="r-2")
    )

    assert (outcome.status, outcome.output) == ("ok", {"sku": "a", "total": 5.0})


@pytest.mark.parametrize("name", ["Shop", "1shop", "", "shop service", "a" * 101, "shop/x"])
def test_bad_service_name_is_a_setup_error(name: str) -> None:
    with pytest.raises(AdapterSetupError, match="is invalid"):
        Service(name)


@pytest.mark.parametrize("name", ["shop", "s", "shop_2.eu-west", "a" * 100])
def test_good_service_names(name: str) -> None:
    assert Service(name).name == name


async def test_with_command_topic_keeps_operations() -> None:
    shop = make_service()

    moved = Service.with_command_topic(shop, "eu.shop.commands")

    assert (moved.name, moved.command_topic) == ("shop", "eu.shop.commands")
    assert moved.operations == shop.operations
    assert (await moved.invoke("echo_list", [3])).output == [6]
    assert shop.command_topic == "shop.commands"


def test_service_name_with_trailing_newline_is_rejected() -> None:
    with pytest.raises(AdapterSetupError, match="is invalid"):
        Service("shop\n")


def test_an_operation_declares_a_cache_for_in_process_use() -> None:
    shop = Service("shop")

    @shop.operation("price", cache_ttl_ms=5_000)
    async def price(query: Query) -> Answer:
        return Answer(sku=query.sku, total=1.0)

    @shop.operation(cache_ttl_ms=250)
    async def stock(query: Query) -> int:
        return 3

    @shop.operation
    async def order(query: Query) -> str:
        return query.sku

    assert {name: op.cache_ttl_ms for name, op in shop.operations.items()} == {
        "price": 5_000,
        "stock": 250,
        "order": None,
    }
    copy = Service.with_command_topic(shop, "eu.shop.commands")
    assert copy.operations["price"].cache_ttl_ms == 5_000


@pytest.mark.parametrize("ttl", [0, -1, 1.5, True, "5000"])
def test_a_bad_cache_ttl_is_a_setup_error_naming_the_fix(ttl: Any) -> None:
    shop = Service("shop")

    with pytest.raises(AdapterSetupError) as caught:
        shop.operation("price", cache_ttl_ms=ttl)

    assert str(caught.value) == (
        f"Service 'shop': cache_ttl_ms must be a whole number of milliseconds above 0, "
        f"not {ttl!r}; write e.g. `cache_ttl_ms=5_000`, or leave it out to never cache "
        "the operation."
    )
