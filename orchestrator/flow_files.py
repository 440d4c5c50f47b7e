"""Read flow files (YAML or JSON) and the service catalog from a flows folder.

A flows folder holds ``services.yaml`` (the service catalog) and one file per
flow (``*.yaml``, ``*.yml`` or ``*.json``). Every file is checked when it loads;
a bad one stops the load with a message naming the file, the step and the fix.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from contracts.flow import FlowDefinition
from orchestrator.catalog import LoadedCatalog, load_catalog
from orchestrator.documents import UnreadableDocument, read_document
from orchestrator.errors import FlowLoadError
from orchestrator.flow import CompiledFlow, compile_flow
from orchestrator.validation_messages import describe_validation_error

CATALOG_FILE_NAMES = ("services.yaml", "services.yml", "services.json")
FLOW_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True, slots=True)
class FlowRegistry:
    """The compiled flows of one deployment, by name, and the catalog they use."""

    flows: Mapping[str, CompiledFlow]
    catalog: LoadedCatalog

    def get(self, name: str) -> CompiledFlow | None:
        """The flow called ``name``, or None."""
        return self.flows.get(name)


def read_flow_definition(path: Path) -> FlowDefinition:
    """Parse and validate one flow file (no catalog checks)."""
    try:
        raw: Any = read_document(path)
    except OSError as error:
        raise FlowLoadError(f"Cannot read the flow file {path}: {error.strerror}.") from None
    except UnreadableDocument as error:
        raise FlowLoadError(f"{path} is not valid YAML or JSON: {error}.") from None
    try:
        return FlowDefinition.model_validate(raw)
    except ValidationError as error:
        details = "\n  ".join(describe_validation_error(error))
        raise FlowLoadError(f"{path} is not a valid flow definition:\n  {details}") from None


def find_catalog(folder: Path) -> Path:
    """Return the catalog file of a flows folder."""
    for name in CATALOG_FILE_NAMES:
        if (folder / name).is_file():
            return folder / name
    raise FlowLoadError(
        f"{folder} has no service catalog: add a services.yaml naming the services its flows call."
    )


def flow_files(folder: Path) -> Iterator[Path]:
    """The flow files of a folder: every YAML/JSON file except the catalog."""
    for path in sorted(folder.iterdir()):
        if path.suffix in FLOW_SUFFIXES and path.name not in CATALOG_FILE_NAMES and path.is_file():
            yield path


def load_flows(path: Path, *, catalog_path: Path | None = None) -> FlowRegistry:
    """Load and check flows from a folder, or from one flow file.

    Args:
        path: a flows folder, or a single flow file.
        catalog_path: the service catalog; by default ``services.yaml`` in the
            folder (or in the flow file's folder).

    Raises:
        FlowLoadError: a flow is invalid, two files declare the same flow, or
            the folder holds no flow.
        CatalogLoadError: the catalog is invalid.
    """
    if not path.exists():
        raise FlowLoadError(f"{path} does not exist: give a flows folder or a flow file.")
    folder = path if path.is_dir() else path.parent
    catalog = load_catalog(catalog_path or find_catalog(folder))
    files = list(flow_files(path)) if path.is_dir() else [path]
    if not files:
        raise FlowLoadError(
            f"{path} holds no flow file (*.yaml, *.yml or *.json besides services)."
        )
    flows: dict[str, CompiledFlow] = {}
    for file in files:
        compiled = compile_flow(read_flow_definition(file), catalog=catalog, source=str(file))
        if compiled.name in flows:
            raise FlowLoadError(
                f"{file} declares flow '{compiled.name}', already declared in "
                f"{flows[compiled.name].source}: flow names must be unique."
            )
        flows[compiled.name] = compiled
    return FlowRegistry(flows=flows, catalog=catalog)
