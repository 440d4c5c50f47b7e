"""The service catalog: environment expansion, Python adapters, validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from contracts.catalog import HttpService, KafkaService
from orchestrator.catalog import catalog_from_data, expand_environment, load_catalog
from orchestrator.errors import CatalogLoadError


def http(base_url: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "http", "base_url": base_url, "operations": {"op": {"path": "/"}}, **extra}


@pytest.mark.parametrize(
    ("text", "environ", "expected"),
    [
        ("${HOST}", {"HOST": "h"}, "h"),
        ("http://${HOST}:${PORT}/x", {"HOST": "h", "PORT": "80"}, "http://h:80/x"),
        ("${HOST:-fallback}", {}, "fallback"),
        ("${HOST:-fallback}", {"HOST": "set"}, "set"),
        ("${HOST:-}", {}, ""),
        ("${HOST:-http://d:1}", {}, "http://d:1"),
        ("no references", {}, "no references"),
        ("$HOST and ${ not-a-ref}", {}, "$HOST and ${ not-a-ref}"),
    ],
)
def test_expand_environment(text: str, environ: dict[str, str], expected: str) -> None:
    assert expand_environment(text, where="here", environ=environ) == expected


def test_default_applies_to_an_empty_variable() -> None:
    assert expand_environment("${HOST:-fallback}", where="x", environ={"HOST": ""}) == "fallback"


def test_expansion_in_base_url_headers_and_command_topic() -> None:
    environ = {"URL": "http://api.test", "TOKEN": "t0k", "TOPIC": "eu.stock"}
    loaded = catalog_from_data(
        {
            "services": {
                "api": http("${URL}/v1", headers={"Authorization": "Bearer ${TOKEN}"}),
                "stock": {"kind": "kafka", "command_topic": "${TOPIC}.commands"},
            }
        },
        source="services.yaml",
        environ=environ,
    )

    api = loaded.catalog.services["api"]
    stock = loaded.catalog.services["stock"]
    assert isinstance(api, HttpService)
    assert isinstance(stock, KafkaService)
    assert api.base_url == "http://api.test/v1"
    assert api.headers == {"Authorization": "Bearer t0k"}
    assert stock.command_topic == "eu.stock.commands"


@pytest.mark.parametrize(
    "service",
    [
        http("${MISSING_URL}"),
        http("http://x", headers={"X-Key": "${MISSING_URL}"}),
        {"kind": "kafka", "command_topic": "${MISSING_URL}"},
    ],
)
def test_missing_variable_names_variable_and_service(service: dict[str, Any]) -> None:
    with pytest.raises(CatalogLoadError) as caught:
        catalog_from_data({"services": {"billing": service}}, source="cat.yaml", environ={})

    message = str(caught.value)
    assert "cat.yaml, service 'billing'" in message
    assert "MISSING_URL, which is not set" in message
    assert "${MISSING_URL:-default}" in message


def test_environment_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CATALOG_TEST_URL", "http://from-env.test")

    loaded = catalog_from_data({"services": {"a": http("${CATALOG_TEST_URL}")}}, source="s")

    assert loaded.catalog.services["a"].base_url == "http://from-env.test"  # type: ignore[union-attr]


def test_python_adapter_is_imported() -> None:
    from handlers.demo.inventory import inventory

    loaded = catalog_from_data(
        {"services": {"stock": {"kind": "python", "adapter": "handlers.demo.inventory:inventory"}}},
        source="s",
        environ={},
    )

    assert loaded.python_adapters == {"stock": inventory}
    assert loaded.operations_of("stock") == {"stock_levels", "reserve", "release"}


@pytest.mark.parametrize(
    ("definition", "operations"),
    [
        (http("http://x"), frozenset({"op"})),
        ({"kind": "kafka", "operations": ["a", "b"]}, frozenset({"a", "b"})),
        ({"kind": "kafka"}, None),
    ],
)
def test_operations_of(definition: dict[str, Any], operations: frozenset[str] | None) -> None:
    loaded = catalog_from_data({"services": {"s": definition}}, source="s", environ={})

    assert loaded.operations_of("s") == operations


@pytest.mark.parametrize(
    ("adapter", "fragment"),
    [
        ("no_such_module_xyz:thing", "cannot import 'no_such_module_xyz'"),
        ("handlers.demo.inventory:nothing", "has no attribute 'nothing'"),
        ("handlers.demo.inventory:inventory.missing", "has no attribute 'inventory.missing'"),
        ("handlers.demo.inventory:stock_levels", "is a function, not a handlers.Service"),
        ("handlers.demo.data:STOCK", "is a dict, not a handlers.Service"),
    ],
)
def test_bad_python_adapter_reference(adapter: str, fragment: str) -> None:
    with pytest.raises(CatalogLoadError) as caught:
        catalog_from_data(
            {"services": {"stock": {"kind": "python", "adapter": adapter}}},
            source="cat.yaml",
            environ={},
        )

    assert str(caught.value).startswith("cat.yaml, service 'stock': ")
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "location"),
    [
        ({"services": {"a": {"kind": "soap"}}}, "services.a"),
        ({"services": {"a": http("ftp://x")}}, "services.a.http.base_url"),
        ({"services": {}, "extra": 1}, "extra"),
        (None, "(top level)"),
    ],
)
def test_invalid_catalog_lists_locations(raw: Any, location: str) -> None:
    with pytest.raises(CatalogLoadError) as caught:
        catalog_from_data(raw, source="cat.yaml", environ={})

    assert str(caught.value).startswith("cat.yaml is not a valid service catalog:\n  ")
    assert f"\n  {location}" in str(caught.value)


def test_load_catalog_reads_yaml(tmp_path: Path) -> None:
    path = tmp_path / "services.yaml"
    path.write_text("services:\n  a: {kind: http, base_url: '${U}', operations: {op: {path: /}}}\n")

    loaded = load_catalog(path, environ={"U": "http://u.test"})

    assert loaded.source == str(path)
    assert loaded.catalog.services["a"].base_url == "http://u.test"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "Cannot read the service catalog"), ("services: [oops\n", "is not valid YAML")],
)
def test_load_catalog_errors(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "services.yaml"
    if content is not None:
        path.write_text(content)

    with pytest.raises(CatalogLoadError, match=message):
        load_catalog(path)
