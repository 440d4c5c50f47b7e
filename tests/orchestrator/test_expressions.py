"""JMESPath expressions: the root names they read, the added functions, errors."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.expressions import EvaluationError, ExpressionError, compile_expression


@pytest.mark.parametrize(
    ("source", "reads"),
    [
        ("input", {"input"}),
        ("input.order_id", {"input"}),
        ("order.user_id", {"order"}),
        ("order.items[].product_id", {"order"}),
        ("order.items[*].qty", {"order"}),
        ("order.items[0]", {"order"}),
        ("input.*", {"input"}),
        ("products[?qty > `1`].name", {"products"}),
        ("reply.levels[?available > `0`].product_id", {"reply"}),
        ("multiply(reply.price, item.qty)", {"reply", "item"}),
        ("sort_by(products, &price)[].name", {"products"}),
        ("length(order.items)", {"order"}),
        ("{name: store.name, city: store.city}", {"store"}),
        ("[input.a, order.b]", {"input", "order"}),
        ("input | order", {"input"}),
        ("input.a || fallback", {"input", "fallback"}),
        ("input.a && user.ok", {"input", "user"}),
        ("!input.flag", {"input"}),
        ("input.a == order.b", {"input", "order"}),
        ("`5`", set()),
        ("'text'", set()),
        ('`{"a": 1}`', set()),
        ("where_in(products, 'product_id', stock.in_stock)", {"products", "stock"}),
    ],
)
def test_reads_are_the_root_names(source: str, reads: set[str]) -> None:
    assert compile_expression(source).reads == frozenset(reads)


@pytest.mark.parametrize("source", ["order.items[0:2]", "order.items[::-1].product_id"])
def test_slice_reads_its_root(source: str) -> None:
    assert compile_expression(source).reads == frozenset({"order"})


@pytest.mark.parametrize("source", ["@", "@.input", "length(@)", "[@, input]", "{a: @}"])
def test_current_node_at_the_root_is_rejected(source: str) -> None:
    with pytest.raises(ExpressionError, match="'@' at the top level reads the whole context"):
        compile_expression(source)


@pytest.mark.parametrize(
    ("source", "reads"), [("order.items[?@ != `null`]", {"order"}), ("input | @", {"input"})]
)
def test_current_node_below_the_root_is_allowed(source: str, reads: set[str]) -> None:
    assert compile_expression(source).reads == frozenset(reads)


@pytest.mark.parametrize("source", ["input[", "a.", "", "foo(", "input.[?]"])
def test_compile_error_is_an_expression_error_naming_the_source(source: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(source)

    message = str(caught.value)
    assert message.startswith(f"{source!r} is not a valid JMESPath expression: ")
    assert "\n" not in message
    assert caught.value.__cause__ is None  # `from None`: no jmespath traceback noise


@pytest.mark.parametrize(
    ("source", "context", "value"),
    [
        ("input.order_id", {"input": {"order_id": "o-1"}}, "o-1"),
        ("multiply(a, b)", {"a": 24.5, "b": 2}, 49.0),
        ("multiply(a, b)", {"a": 3, "b": 4}, 12),
        ("round(n, `2`)", {"n": 61.004}, 61.0),
        ("round(n, `0`)", {"n": 2.6}, 3.0),
        (
            "where_in(xs, 'id', ids)",
            {"xs": [{"id": "a"}, {"id": "b"}], "ids": ["b"]},
            [{"id": "b"}],
        ),
        ("where_in(xs, 'id', ids)", {"xs": [None, {"id": "a"}, 7], "ids": ["a"]}, [{"id": "a"}]),
        ("where_in(xs, 'id', ids)", {"xs": [{"id": "a"}], "ids": None}, []),
        ("where_in(xs, 'id', ids)", {"xs": [{"id": "a"}], "ids": []}, []),
        ("where_in(xs, 'id', ids)", {"xs": [{"other": 1}], "ids": ["a"]}, []),
        ("where_in(xs, 'n', ids)", {"xs": [{"n": 2}, {"n": 3}], "ids": [3]}, [{"n": 3}]),
        ("where_in(xs, 'k', ids)", {"xs": [{"k": [1]}, {"k": [2]}], "ids": [[2]]}, [{"k": [2]}]),
        ("missing.field", {}, None),
    ],
)
def test_evaluate(source: str, context: dict[str, Any], value: Any) -> None:
    assert compile_expression(source).evaluate(context) == value


def test_where_in_does_not_match_booleans_to_numbers() -> None:
    expression = compile_expression("where_in(xs, 'v', ids)")

    assert expression.evaluate({"xs": [{"v": True}, {"v": 1}], "ids": [1]}) == [{"v": 1}]


@pytest.mark.parametrize(
    ("source", "context", "function"),
    [
        ("multiply(a, b)", {"a": "x", "b": 2}, "multiply"),
        ("round(a, `1`)", {"a": None}, "round"),
        ("where_in(xs, 'id', ids)", {"xs": {"not": "a list"}, "ids": []}, "where_in"),
        ("where_in(xs, 'id', ids)", {"xs": [], "ids": "a"}, "where_in"),
        ("multiply(a)", {"a": 1}, "multiply"),
    ],
)
def test_type_errors_at_run_time_are_evaluation_errors(
    source: str, context: dict[str, Any], function: str
) -> None:
    expression = compile_expression(source)

    with pytest.raises(EvaluationError) as caught:
        expression.evaluate(context)

    assert str(caught.value).startswith(f"expression {source!r} failed: ")
    assert f"{function}()" in str(caught.value)
