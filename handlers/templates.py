"""``{field}`` templates for HTTP paths, query strings, headers and JSON bodies.

A template is compiled once, when the catalog and flows load; the fields it
names are checked against the step's input mapping then, so a typo is a load
error and not a request to ``/orders/None`` at run time.

Values inserted as text (paths, query values, headers, interpolated strings):
strings as they are, booleans as ``true``/``false``, numbers as written, and lists
and objects as compact JSON (``["a","b"]``), never as Python's repr. A null or
missing field is an error (:class:`MissingFieldError`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class MissingFieldError(KeyError):
    """A template names a field the call's input does not have (or has as null)."""


@dataclass(frozen=True, slots=True)
class TextTemplate:
    """A string with ``{field}`` placeholders, rendered as text."""

    source: str
    fields: frozenset[str]

    def render(self, values: Mapping[str, Any], *, escape: Callable[[str], str] = str) -> str:
        """Fill the placeholders; ``escape`` is applied to each inserted value."""

        def replace(match: re.Match[str]) -> str:
            return escape(_text(_lookup(values, match.group(1))))

        return _PLACEHOLDER.sub(replace, self.source)


@dataclass(frozen=True, slots=True)
class JsonTemplate:
    """A JSON value whose strings may be ``"{field}"`` (typed) or interpolated text."""

    source: Any
    fields: frozenset[str]

    def render(self, values: Mapping[str, Any]) -> Any:
        """Return the JSON value with placeholders filled from ``values``."""
        return _render_json(self.source, values)


def compile_text(source: str) -> TextTemplate:
    """Compile a text template."""
    return TextTemplate(source=source, fields=frozenset(_PLACEHOLDER.findall(source)))


def compile_json(source: Any) -> JsonTemplate:
    """Compile a JSON body template."""
    return JsonTemplate(source=source, fields=frozenset(_json_fields(source)))


def _json_fields(value: Any) -> set[str]:
    if isinstance(value, str):
        return set(_PLACEHOLDER.findall(value))
    if isinstance(value, dict):
        return set().union(*(_json_fields(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(_json_fields(item) for item in value))
    return set()


def _render_json(value: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        whole = _PLACEHOLDER.fullmatch(value)
        if whole:
            return _lookup(values, whole.group(1))
        return _PLACEHOLDER.sub(lambda match: _text(_lookup(values, match.group(1))), value)
    if isinstance(value, dict):
        return {key: _render_json(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [_render_json(item, values) for item in value]
    return value


def _lookup(values: Mapping[str, Any], name: str) -> Any:
    value = values.get(name)
    if value is None:
        raise MissingFieldError(name)
    return value


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return orjson.dumps(value).decode()
    return str(value)
