"""The catalog's resilience settings per service: circuit, rate_limit, max_concurrency,
checked at load with errors that name the service and the fix."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from contracts.catalog import CircuitPolicy, HttpService
from orchestrator.catalog import catalog_from_data
from orchestrator.errors import CatalogLoadError
from orchestrator.runtime.adapters import build_routes


def http(**extra: Any) -> dict[str, Any]:
    return {
        "kind": "http",
        "base_url": "http://127.0.0.1:9",
        "operations": {"op": {"path": "/"}},
        **extra,
    }


def test_an_empty_circuit_turns_it_on_with_the_documented_defaults() -> None:
    loaded = catalog_from_data({"services": {"a": http(circuit={})}}, source="c.yaml")
    definition = loaded.catalog.services["a"]
    assert isinstance(definition, HttpService)
    assert definition.circuit == CircuitPolicy(
        failure_ratio=0.5, min_calls=20, window_ms=10_000, open_ms=5_000, half_open_calls=1
    )
    assert definition.rate_limit is None
    assert definition.max_concurrency is None


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"circuit": {"failure_ratio": 0}}, "circuit.failure_ratio"),
        ({"circuit": {"failure_ratio": 1.5}}, "circuit.failure_ratio"),
        ({"circuit": {"min_calls": 0}}, "circuit.min_calls"),
        ({"circuit": {"open_ms": 0}}, "circuit.open_ms"),
        ({"circuit": {"half_open_calls": 0}}, "circuit.half_open_calls"),
        ({"circuit": {"ratio": 0.5}}, "circuit.ratio"),
        ({"rate_limit": {"burst": 5}}, "rate_limit.per_second"),
        ({"rate_limit": {"per_second": 0}}, "rate_limit.per_second"),
        ({"rate_limit": {"per_second": 5, "max_wait_ms": -1}}, "rate_limit.max_wait_ms"),
        ({"max_concurrency": 0}, "max_concurrency"),
    ],
)
def test_bad_settings_are_load_errors_naming_the_field(
    extra: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(CatalogLoadError, match=r"c\.yaml is not a valid service catalog") as error:
        catalog_from_data({"services": {"a": http(**extra)}}, source="c.yaml")
    assert fragment in str(error.value)


@pytest.mark.parametrize("key", ["circuit", "rate_limit", "max_concurrency"])
def test_a_kafka_service_refuses_them_with_the_reason(key: str) -> None:
    kafka = {"kind": "kafka", key: {} if key != "max_concurrency" else 3}
    with pytest.raises(CatalogLoadError) as error:
        catalog_from_data({"services": {"k": kafka}}, source="c.yaml")
    assert str(error.value).startswith(f"c.yaml, service 'k': {key} applies to services called")
    assert "remove it" in str(error.value)


def test_max_concurrency_above_the_services_own_pool_is_refused() -> None:
    with pytest.raises(CatalogLoadError, match=r"max_concurrency \(8\) is above max_connections"):
        catalog_from_data(
            {"services": {"a": http(max_connections=4, max_concurrency=8)}}, source="c.yaml"
        )


async def test_routes_carry_the_settings_and_bound_calls_by_pool_or_cap() -> None:
    loaded = catalog_from_data(
        {
            "services": {
                "capped": http(max_concurrency=3, circuit={}),
                "pooled": http(max_connections=5),
                "shared": http(rate_limit={"per_second": 10}),
                "k": {"kind": "kafka"},
            }
        },
        source="c.yaml",
    )
    async with httpx.AsyncClient() as client:
        routes = build_routes(loaded, http_client=client)
        assert routes.concurrency_limits(shared_pool=100) == {
            "capped": 3,
            "pooled": 5,
            # Two services share the default pool: each may hold three quarters of it.
            "shared": 75,
        }
        assert set(routes.circuits) == {"capped"}
        assert set(routes.rate_limits) == {"shared"}
        for route in routes.values():
            aclose = getattr(route, "aclose", None)
            if aclose is not None:
                await aclose()
