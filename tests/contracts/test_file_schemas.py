"""The JSON Schemas of flow files and services.yaml: referenced by every example,
and accepting exactly what the loader accepts (so an editor's squiggle is a load error)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from contracts.export import SCHEMA_DIR
from orchestrator.catalog import load_catalog
from orchestrator.errors import SetupError
from orchestrator.flow_files import CATALOG_FILE_NAMES, load_flows

ROOT = Path(__file__).parents[2]
EXAMPLE_FOLDERS = [ROOT / "handlers" / "demo" / "flows", ROOT / "bench" / "flows"]
EXAMPLES = sorted(path for folder in EXAMPLE_FOLDERS for path in folder.glob("*.y*ml"))
MODELINE = "# yaml-language-server: $schema="


def schema_of(path: Path) -> Path:
    name = "service-catalog" if path.name in CATALOG_FILE_NAMES else "flow"
    return SCHEMA_DIR / f"{name}.schema.json"


DRAFTS: list[type[jsonschema.protocols.Validator]] = [
    jsonschema.Draft202012Validator,
    # What the YAML language server implements: the verdicts must be the same.
    jsonschema.Draft7Validator,
]


def validators(schema_file: Path) -> list[jsonschema.protocols.Validator]:
    schema = yaml.safe_load(schema_file.read_text())
    for draft in DRAFTS:
        draft.check_schema(schema)
    return [draft(schema) for draft in DRAFTS]


FLOW = validators(SCHEMA_DIR / "flow.schema.json")
CATALOG = validators(SCHEMA_DIR / "service-catalog.schema.json")


def test_the_examples_are_found() -> None:
    names = {f"{path.parent.parent.name}/{path.name}" for path in EXAMPLES}

    assert {"demo/services.yaml", "demo/order-details.yaml", "bench/parked.yaml"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_example_names_its_schema_on_its_first_line(path: Path) -> None:
    first_line = path.read_text().splitlines()[0]

    assert first_line.startswith(MODELINE), f"{path} must start with `{MODELINE}...`"
    # The path is relative to the file, as the YAML language server resolves it.
    target = (path.parent / first_line.removeprefix(MODELINE)).resolve()
    assert target == schema_of(path).resolve()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_example_is_valid_against_its_schema(path: Path) -> None:
    document = yaml.safe_load(path.read_text())
    for validator in validators(schema_of(path)):
        errors = list(validator.iter_errors(document))

        assert errors == [], [f"{list(error.absolute_path)}: {error.message}" for error in errors]


def test_the_demo_folder_loads_too() -> None:
    # The examples are valid for the loader as well as for the schema.
    registry = load_flows(EXAMPLE_FOLDERS[0])

    assert set(registry.flows) == {"order-details", "place-order"}


# -- the schema and the loader agree -------------------------------------------------

SERVICES = "services:\n  svc: {kind: kafka, operations: [op, undo]}\n"
STEP = {"service": "svc", "operation": "op", "input": {"x": "input.x"}}


def flow(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {"name": "f", "steps": {"a": dict(STEP)}, "result": "a"}
    document.update(changes)
    return document


def step(**changes: Any) -> dict[str, Any]:
    return flow(steps={"a": {**STEP, **changes}})


FLOW_CASES: list[tuple[str, dict[str, Any], bool]] = [
    ("minimal", flow(), True),
    ("nested mapping", step(input={"a": {"b": "input.x", "c": "`1`"}}), True),
    ("any default", step(default={"a": [1, None]}), True),
    ("compensation", step(compensate={"operation": "undo", "input": {"id": "a.id"}}), True),
    ("retry", flow(defaults={"retry": {"attempts": 3, "multiplier": 1.5}}), True),
    ("unknown top-level key", flow(owner="team"), False),
    ("unknown step key", step(retries=3), False),
    ("unknown compensation key", step(compensate={"operation": "undo", "x": 1}), False),
    ("expression not a string", step(input={"x": 5}), False),
    ("result not a string", flow(result=5), False),
    ("condition not a string", step(when=True), False),
    ("step name with capitals", flow(steps={"Bad": dict(STEP)}), False),
    ("reserved step name", flow(steps={"input": dict(STEP)}), False),
    ("no steps", flow(steps={}), False),
    ("bad flow name", flow(name="Bad Name"), False),
    ("zero attempts", step(retry={"attempts": 0}), False),
    ("negative timeout", step(timeout_ms=-1), False),
    ("other schema version", flow(schema_version=2), False),
]


@pytest.mark.parametrize(
    ("document", "accepted"),
    [case[1:] for case in FLOW_CASES],
    ids=[case[0] for case in FLOW_CASES],
)
def test_the_flow_schema_accepts_what_the_loader_accepts(
    tmp_path: Path, document: dict[str, Any], accepted: bool
) -> None:
    (tmp_path / "services.yaml").write_text(SERVICES)
    (tmp_path / "f.yaml").write_text(yaml.safe_dump(document))
    try:
        load_flows(tmp_path)
        loads = True
    except SetupError:
        loads = False

    assert loads is accepted
    assert [validator.is_valid(document) for validator in FLOW] == [accepted] * len(DRAFTS)


def http(**changes: Any) -> dict[str, Any]:
    service = {"kind": "http", "base_url": "http://x", "operations": {"get": {"path": "/a"}}}
    return {"services": {"s": {**service, **changes}}}


ADAPTER = "handlers.demo.inventory:inventory"
CATALOG_CASES: list[tuple[str, dict[str, Any], bool]] = [
    ("http", http(), True),
    ("environment reference", http(base_url="${UNSET_URL:-http://127.0.0.1:1}"), True),
    ("kafka", {"services": {"k": {"kind": "kafka", "command_topic": "t", "operations": ["o"]}}},
     True),
    ("python", {"services": {"p": {"kind": "python", "adapter": ADAPTER}}}, True),
    ("cache", http(operations={"get": {"path": "/a", "cache": {"ttl_ms": 5}}}), True),
    ("not a URL", http(base_url="ftp://x"), False),
    ("unknown kind", {"services": {"s": {"kind": "grpc"}}}, False),
    ("unknown service key", http(timeout=5), False),
    ("unknown kafka key", {"services": {"k": {"kind": "kafka", "topic": "t"}}}, False),
    ("operation without a path", http(operations={"get": {"method": "GET"}}), False),
    ("unknown method", http(operations={"get": {"path": "/a", "method": "FETCH"}}), False),
    ("adapter without attribute", {"services": {"p": {"kind": "python", "adapter": "x"}}}, False),
    ("no operations", http(operations={}), False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("document", "accepted"),
    [case[1:] for case in CATALOG_CASES],
    ids=[case[0] for case in CATALOG_CASES],
)
def test_the_catalog_schema_accepts_what_the_loader_accepts(
    tmp_path: Path, document: dict[str, Any], accepted: bool
) -> None:
    path = tmp_path / "services.yaml"
    path.write_text(yaml.safe_dump(document))
    try:
        load_catalog(path, environ={})
        loads = True
    except SetupError:
        loads = False

    assert loads is accepted
    assert [validator.is_valid(document) for validator in CATALOG] == [accepted] * len(DRAFTS)
