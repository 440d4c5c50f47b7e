"""The checked-in JSON Schemas are exactly what the contract models render."""

from __future__ import annotations

import orjson
import pytest

from contracts.export import EXPORTED, SCHEMA_DIR, render_schemas

RENDERED = render_schemas()


def test_every_exported_model_has_a_checked_in_schema() -> None:
    checked_in = {path.name for path in SCHEMA_DIR.glob("*.schema.json")}

    assert set(RENDERED) == checked_in
    assert set(RENDERED) == {f"{name}.schema.json" for name in EXPORTED}


@pytest.mark.parametrize("file_name", sorted(RENDERED))
def test_checked_in_schema_matches_the_model(file_name: str) -> None:
    checked_in = (SCHEMA_DIR / file_name).read_bytes()

    assert checked_in == RENDERED[file_name], (
        f"contracts/schemas/{file_name} is stale: run `python -m contracts.export`"
    )


@pytest.mark.parametrize(
    ("file_name", "title", "required"),
    [
        ("request-event.schema.json", "RequestEvent", {"request_id", "flow"}),
        ("step-reply.schema.json", "StepReply", {"request_id", "correlation_id", "status"}),
        ("result-event.schema.json", "ResultEvent", {"request_id", "flow", "status"}),
        ("flow.schema.json", "FlowDefinition", {"name", "steps", "result"}),
        ("service-catalog.schema.json", "ServiceCatalog", {"services"}),
    ],
)
def test_rendered_schema_describes_the_model(
    file_name: str, title: str, required: set[str]
) -> None:
    schema = orjson.loads(RENDERED[file_name])

    assert schema["title"] == title
    assert required <= set(schema["required"])
    assert schema["additionalProperties"] is False


def test_rendering_is_canonical() -> None:
    # Sorted keys, two-space indent, trailing newline: stable diffs in review.
    text = RENDERED["step-command.schema.json"]

    assert text.endswith(b"}\n")
    assert (
        text
        == orjson.dumps(orjson.loads(text), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        + b"\n"
    )
