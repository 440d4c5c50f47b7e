"""The adapter SDK: registering operations and invoking them in-process."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

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
    return query


async def _two_params(query: Query, extra: int) -> Answer:
    raise NotImplementedError


@pytest.mark.parametrize("function", [_no_return, _no_param_annotation, _two_params])
def test_operation_needs_one_annotated_parameter_and_a_return(function: Any) -> None:
    shop = Service("shop")

    with pytest.raises(AdapterSetupError, match="exactly one annotated parameter"):
        shop.operation("op")(function)
    assert shop.operations == {}


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
