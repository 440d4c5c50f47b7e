"""Loading a flows folder (or one file) with its service catalog."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from orchestrator.errors import CatalogLoadError, FlowLoadError
from orchestrator.flow_files import find_catalog, flow_files, load_flows, read_flow_definition

DEMO = Path(__file__).parents[2] / "handlers" / "demo" / "flows"

CATALOG = """\
services:
  things:
    kind: kafka
    operations: [get]
"""
FLOW = """\
name: {name}
steps:
  thing:
    service: things
    operation: get
    input: {{id: input.id}}
result: thing
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "services.yaml").write_text(CATALOG)
    (tmp_path / "one.yaml").write_text(FLOW.format(name="one"))
    return tmp_path


@pytest.fixture
def no_demo_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "DEMO_ORDERS_URL",
        "DEMO_USERS_URL",
        "DEMO_STORES_URL",
        "DEMO_PRODUCTS_URL",
        "DEMO_USERS_TOKEN",
        "DEMO_INVENTORY_TOPIC",
    ):
        monkeypatch.delenv(name, raising=False)


def test_demo_folder_loads_with_catalog_defaults(no_demo_env: None) -> None:
    registry = load_flows(DEMO)

    assert list(registry.flows) == ["order-details", "place-order"]
    flow = registry.get("order-details")
    assert flow is not None
    assert flow.source == str(DEMO / "order-details.yaml")
    assert registry.get("order-history") is None
    assert registry.catalog.source == str(DEMO / "services.yaml")
    services = registry.catalog.catalog.services
    assert services["orders"].base_url == "http://127.0.0.1:8101"  # type: ignore[union-attr]
    assert services["users"].headers == {"Authorization": "Bearer demo-token"}  # type: ignore[union-attr]


def test_single_file_uses_the_catalog_next_to_it(folder: Path) -> None:
    (folder / "two.yaml").write_text(FLOW.format(name="two"))

    registry = load_flows(folder / "two.yaml")

    assert list(registry.flows) == ["two"]


def test_folder_loads_every_flow_file_but_the_catalog(folder: Path) -> None:
    (folder / "two.yml").write_text(FLOW.format(name="two"))
    (folder / "three.json").write_text(
        '{"name": "three", "steps": {"thing": {"service": "things", "operation": "get"}},'
        ' "result": "thing"}'
    )
    (folder / "notes.txt").write_text("not a flow")

    registry = load_flows(folder)

    assert sorted(registry.flows) == ["one", "three", "two"]
    assert [path.name for path in flow_files(folder)] == ["one.yaml", "three.json", "two.yml"]


def test_explicit_catalog_path(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    elsewhere = tmp_path_factory.mktemp("flows-only")
    shutil.copy(folder / "one.yaml", elsewhere / "one.yaml")

    registry = load_flows(elsewhere, catalog_path=folder / "services.yaml")

    assert list(registry.flows) == ["one"]


def test_folder_without_catalog(tmp_path: Path) -> None:
    (tmp_path / "one.yaml").write_text(FLOW.format(name="one"))

    with pytest.raises(FlowLoadError, match=r"has no service catalog: add a services\.yaml"):
        load_flows(tmp_path)
    with pytest.raises(FlowLoadError, match=r"services\.yaml"):
        find_catalog(tmp_path)


@pytest.mark.parametrize("name", ["services.yml", "services.json"])
def test_catalog_may_be_yml_or_json(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text('{"services": {"things": {"kind": "kafka"}}}')

    assert find_catalog(tmp_path) == tmp_path / name


def test_folder_without_flows(tmp_path: Path) -> None:
    (tmp_path / "services.yaml").write_text(CATALOG)

    with pytest.raises(FlowLoadError, match="holds no flow file"):
        load_flows(tmp_path)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(FlowLoadError, match="does not exist"):
        load_flows(tmp_path / "nowhere")


def test_duplicate_flow_names_across_files(folder: Path) -> None:
    (folder / "two.yaml").write_text(FLOW.format(name="one"))

    with pytest.raises(FlowLoadError) as caught:
        load_flows(folder)

    message = str(caught.value)
    assert f"{folder / 'two.yaml'} declares flow 'one'" in message
    assert f"already declared in {folder / 'one.yaml'}" in message


def test_invalid_yaml(folder: Path) -> None:
    (folder / "one.yaml").write_text("name: [unclosed\n")

    with pytest.raises(FlowLoadError, match=r"one\.yaml is not valid YAML or JSON"):
        load_flows(folder)


def test_validation_errors_are_listed_with_locations(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: Bad Name\n"
        "steps:\n"
        "  a: {service: things, operation: get, timeout_ms: 0, colour: red}\n"
    )

    with pytest.raises(FlowLoadError) as caught:
        read_flow_definition(path)

    lines = str(caught.value).splitlines()
    assert lines[0] == f"{path} is not a valid flow definition:"
    locations = {line.strip().split(":")[0] for line in lines[1:]}
    assert locations == {"name", "steps.a.timeout_ms", "steps.a.colour", "result"}


def test_unreadable_flow_file(tmp_path: Path) -> None:
    with pytest.raises(FlowLoadError, match="Cannot read the flow file"):
        read_flow_definition(tmp_path / "missing.yaml")


def test_compile_errors_name_the_file(folder: Path) -> None:
    (folder / "one.yaml").write_text(
        FLOW.format(name="one").replace("operation: get", "operation: put")
    )

    with pytest.raises(FlowLoadError) as caught:
        load_flows(folder)

    assert str(caught.value).startswith(f"{folder / 'one.yaml'}: flow 'one' is invalid:")
    assert "has no operation 'put'" in str(caught.value)


def test_bad_catalog_is_a_catalog_error(folder: Path) -> None:
    (folder / "services.yaml").write_text("services: {things: {kind: soap}}\n")

    with pytest.raises(CatalogLoadError, match="is not a valid service catalog"):
        load_flows(folder)
