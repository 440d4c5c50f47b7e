"""Imports run one way: the pure core, the flow loader and the AsyncAPI generator
load no Kafka, HTTP, tracing or metrics library (the package's public names, and
the adapters package's, are imported on first use)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("aiokafka", "faststream", "httpx", "aiohttp", "opentelemetry.sdk", "prometheus_client")


def loaded_after(statement: str) -> list[str]:
    probe = f"{statement}; import sys; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return [name for name in done.stdout.strip().split(",") if name]


def test_the_pure_core_and_the_asyncapi_generator_load_no_io_library() -> None:
    assert (
        loaded_after("import orchestrator.saga, orchestrator.flow_files, orchestrator.asyncapi")
        == []
    )


def test_the_cli_module_loads_no_io_library_before_a_command_runs() -> None:
    assert loaded_after("import orchestrator.cli") == []


def test_public_names_still_resolve_on_first_use() -> None:
    assert loaded_after("from orchestrator import SagaCoordinator") != []
    assert loaded_after("from orchestrator import FlowBuilder, load_flows") == []
