"""``{field}`` templates: text with escaping, typed JSON bodies, missing fields."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from handlers.templates import MissingFieldError, compile_json, compile_text


@pytest.mark.parametrize(
    ("source", "values", "expected"),
    [
        ("/orders/{order_id}", {"order_id": "o-1"}, "/orders/o-1"),
        ("/{a}/{b}/{a}", {"a": "x", "b": 2}, "/x/2/x"),
        ("flag={on}&off={off}", {"on": True, "off": False}, "flag=true&off=false"),
        ("n={n}", {"n": 0}, "n=0"),
        ("static", {}, "static"),
        ("{not a field} {1x}", {}, "{not a field} {1x}"),
    ],
)
def test_text_render(source: str, values: dict[str, Any], expected: str) -> None:
    assert compile_text(source).render(values) == expected


def test_text_fields_are_the_placeholders() -> None:
    assert compile_text("/{a}/x/{b_2}?{a}").fields == frozenset({"a", "b_2"})


def test_text_escape_applies_to_inserted_values_only() -> None:
    template = compile_text("/items/{id}/a b")

    rendered = template.render({"id": "a/b c"}, escape=lambda text: quote(text, safe=""))

    assert rendered == "/items/a%2Fb%20c/a b"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{count}", 3),
        ("{flag}", True),
        ("{tags}", ["x", "y"]),
        ("{nested}", {"k": 1}),
        ("n-{count}", "n-3"),
        ("{count}{count}", "33"),
        (
            {"a": "{count}", "b": ["{flag}", "is {flag}"], "c": 1.5, "d": None},
            {"a": 3, "b": [True, "is true"], "c": 1.5, "d": None},
        ),
    ],
)
def test_json_render_typed_whole_placeholder_else_text(source: Any, expected: Any) -> None:
    values = {"count": 3, "flag": True, "tags": ["x", "y"], "nested": {"k": 1}}

    assert compile_json(source).render(values) == expected


def test_json_fields_are_collected_from_every_string() -> None:
    template = compile_json({"a": "{x}", "b": ["{y}", {"c": "pre {z} post"}], "d": 4})

    assert template.fields == frozenset({"x", "y", "z"})


@pytest.mark.parametrize("values", [{}, {"id": None}, {"other": "x"}])
@pytest.mark.parametrize(
    "render",
    [
        lambda values: compile_text("/x/{id}").render(values),
        lambda values: compile_json("{id}").render(values),
        lambda values: compile_json({"a": ["id={id}"]}).render(values),
    ],
    ids=["text", "json-typed", "json-text"],
)
def test_missing_or_null_field_raises(render: Any, values: dict[str, Any]) -> None:
    with pytest.raises(MissingFieldError) as caught:
        render(values)

    assert caught.value.args[0] == "id"
    assert isinstance(caught.value, KeyError)
