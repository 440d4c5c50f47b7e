"""The service catalog: environment expansion, Python adapters, validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from contracts.catalog import HttpService, KafkaService, ServiceCatalog
from orchestrator.catalog import LoadedCatalog, catalog_from_data, expand_environment, load_catalog
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


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_a_cache_on_a_write_is_refused_naming_service_operation_and_fix(method: str) -> None:
    operation = {"method": method, "path": "/users", "cache": {"ttl_ms": 1000}}
    service = {"kind": "http", "base_url": "http://x", "operations": {"create_user": operation}}

    with pytest.raises(CatalogLoadError) as caught:
        catalog_from_data({"services": {"users": service}}, source="cat.yaml", environ={})

    assert str(caught.value) == (
        f"cat.yaml, service 'users', operation 'create_user': cache is set on a {method}, "
        "but only a GET can be cached (a cached write would be performed for the first saga "
        "only); remove its cache, or make it a GET if it only reads."
    )


@pytest.mark.parametrize("cache", [{"ttl_ms": 0}, {"ttl_ms": -5}, {"ttl_ms": 10, "size": 3}, {}])
def test_a_bad_cache_lists_its_location(cache: dict[str, Any]) -> None:
    operation = {"path": "/users/{id}", "cache": cache}
    service = {"kind": "http", "base_url": "http://x", "operations": {"get_user": operation}}

    with pytest.raises(CatalogLoadError) as caught:
        catalog_from_data({"services": {"users": service}}, source="cat.yaml", environ={})

    assert "\n  services.users.http.operations.get_user.cache." in str(caught.value)


def test_cached_operations_of_http_and_sdk_services() -> None:
    from handlers.sdk import Service

    pricing = Service("pricing")

    @pricing.operation(cache_ttl_ms=5_000)
    async def quote(sku: str) -> float:
        return 1.0

    @pricing.operation
    async def order(sku: str) -> str:
        return sku

    raw = {
        "services": {
            "users": {
                "kind": "http",
                "base_url": "http://x",
                "operations": {
                    "get_user": {"path": "/users/{id}", "cache": {"ttl_ms": 30_000}},
                    "list_users": {"path": "/users"},
                    "create_user": {"method": "POST", "path": "/users"},
                },
            },
            "stock": {"kind": "kafka", "operations": ["levels"]},
            "pricing": {"kind": "python", "adapter": "somewhere:pricing"},
        }
    }
    catalog = ServiceCatalog.model_validate(raw)
    loaded = LoadedCatalog(catalog=catalog, python_adapters={"pricing": pricing}, source="s")

    assert loaded.cached_operations() == {
        ("users", "get_user"): 30_000,
        ("pricing", "quote"): 5_000,
    }


def test_secrets_come_from_files_and_reach_operation_headers_and_query(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t0ken-from-file\n")
    service = http(
        "http://x",
        headers={"Authorization": f"Bearer ${{file:{token}}}"},
        operations={
            "op": {"path": "/", "query": {"key": "${API_KEY}"}, "headers": {"X-K": "${API_KEY}"}}
        },
    )

    loaded = catalog_from_data({"services": {"a": service}}, source="s", environ={"API_KEY": "k1"})

    definition = loaded.catalog.services["a"]
    assert isinstance(definition, HttpService)
    assert definition.headers == {"Authorization": "Bearer t0ken-from-file"}
    assert definition.operations["op"].query == {"key": "k1"}
    assert definition.operations["op"].headers == {"X-K": "k1"}


def test_a_missing_secret_file_is_a_load_error_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    service = http("http://x", headers={"Authorization": f"${{file:{missing}}}"})

    with pytest.raises(CatalogLoadError, match=f"reads the file {missing}, which cannot be read"):
        catalog_from_data({"services": {"a": service}}, source="s", environ={})


@pytest.mark.parametrize(
    ("allow", "message"),
    [({"networks": ["10.0.0.1/8"]}, "allow.networks"), ({"loopbak": True}, "loopbak")],
)
def test_a_bad_allow_list_is_a_load_error(allow: dict[str, Any], message: str) -> None:
    with pytest.raises(CatalogLoadError, match=message):
        catalog_from_data({"services": {"a": http("http://x", allow=allow)}}, source="s")


def test_services_refuse_internal_addresses_unless_allowed() -> None:
    loaded = catalog_from_data(
        {"services": {"a": http("http://x"), "b": http("http://x", allow={"loopback": True})}},
        source="s",
    )
    a, b = (loaded.catalog.services[name] for name in ("a", "b"))
    assert isinstance(a, HttpService)
    assert isinstance(b, HttpService)
    assert (a.allow.loopback, a.allow.private, a.allow.link_local, a.allow.networks) == (
        False,
        False,
        False,
        [],
    )
    assert b.allow.loopback


def test_the_host_header_cannot_come_from_event_data() -> None:
    templated = http("http://x", operations={"op": {"path": "/", "headers": {"host": "{t}"}}})
    fixed = http("http://x", operations={"op": {"path": "/", "headers": {"Host": "api.test"}}})

    with pytest.raises(CatalogLoadError, match="Host header cannot be filled"):
        catalog_from_data({"services": {"a": templated}}, source="s")
    catalog_from_data({"services": {"a": fixed}}, source="s")
