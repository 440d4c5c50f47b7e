"""Export the JSON Schema of every contract into ``contracts/schemas/``.

Run ``python -m contracts.export`` after changing a contract; a test fails while
the checked-in schemas differ from the models, so wire changes show up in review.
"""

from __future__ import annotations

from pathlib import Path

import orjson
from pydantic import BaseModel

from contracts.catalog import ServiceCatalog
from contracts.events import RequestEvent, ResultEvent, StepCommand, StepReply
from contracts.flow import FlowDefinition

SCHEMA_DIR = Path(__file__).parent / "schemas"

EXPORTED: dict[str, type[BaseModel]] = {
    "request-event": RequestEvent,
    "step-command": StepCommand,
    "step-reply": StepReply,
    "result-event": ResultEvent,
    "flow": FlowDefinition,
    "service-catalog": ServiceCatalog,
}


def render_schemas() -> dict[str, bytes]:
    """Return each exported schema's file name and its canonical JSON text."""
    return {
        f"{name}.schema.json": orjson.dumps(
            model.model_json_schema(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
        )
        + b"\n"
        for name, model in EXPORTED.items()
    }


def main() -> None:
    """Write the schemas, replacing the checked-in files."""
    SCHEMA_DIR.mkdir(exist_ok=True)
    for file_name, text in render_schemas().items():
        (SCHEMA_DIR / file_name).write_bytes(text)
        print(f"wrote {SCHEMA_DIR / file_name}")


if __name__ == "__main__":
    main()
