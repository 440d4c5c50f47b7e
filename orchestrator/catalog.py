"""Load the service catalog (``services.yaml``) and resolve what it names.

Environment references (``${VAR}``, ``${VAR:-default}``) and file references
(``${file:/run/secrets/token}``, the file's text without its final newline) in a
service's ``base_url``, ``headers`` and ``command_topic``, and in an HTTP
operation's ``headers`` and ``query`` values, are expanded at load time, so a
missing secret is a load error that names the variable or file (never its value)
instead of a 401 at run time.

A ``cache`` on an operation that is not a GET is a load error too: a cached write
would be skipped for every saga but the first. So are ``circuit``, ``rate_limit`` and
``max_concurrency`` on a Kafka service, and a ``max_concurrency`` above the service's
own ``max_connections``.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from contracts.catalog import HttpService, KafkaService, PythonService, ServiceCatalog
from orchestrator.documents import UnreadableDocument, read_document
from orchestrator.errors import CatalogLoadError
from orchestrator.validation_messages import describe_validation_error

if TYPE_CHECKING:
    from handlers.sdk import Service

_ENV_REFERENCE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
_FILE_REFERENCE = re.compile(r"\$\{file:(?P<path>[^}]+)\}")


def _read_secret_file(match: re.Match[str], where: str) -> str:
    path = Path(match.group("path"))
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "it is not UTF-8 text"
        raise CatalogLoadError(
            f"{where} reads the file {path}, which cannot be read ({reason}): "
            "create it, or fix the path."
        ) from None
    return text.removesuffix("\n").removesuffix("\r")


def expand_environment(text: str, *, where: str, environ: Mapping[str, str]) -> str:
    """Replace ``${VAR}``, ``${VAR:-default}`` (from ``environ``) and ``${file:PATH}``."""
    text = _FILE_REFERENCE.sub(lambda match: _read_secret_file(match, where), text)

    def replace(match: re.Match[str]) -> str:
        name, default = match.group("name"), match.group("default")
        value = environ.get(name)
        # As in the shell: ':-' gives the default when the variable is unset or empty.
        if default is not None and not value:
            return default
        if value is not None:
            return value
        raise CatalogLoadError(
            f"{where} reads the environment variable {name}, which is not set: "
            f"set it, or write ${{{name}:-default}} to give a default."
        )

    return _ENV_REFERENCE.sub(replace, text)


@dataclass(frozen=True, slots=True)
class LoadedCatalog:
    """The validated catalog, with environment expanded and Python adapters imported."""

    catalog: ServiceCatalog
    python_adapters: dict[str, Service]
    source: str

    def operations_of(self, service: str) -> frozenset[str] | None:
        """Known operations of ``service``; None when any name is accepted."""
        definition = self.catalog.services[service]
        if isinstance(definition, HttpService):
            return frozenset(definition.operations)
        if isinstance(definition, KafkaService):
            return frozenset(definition.operations) or None
        return frozenset(self.python_adapters[service].operations)

    def cached_operations(self) -> dict[tuple[str, str], int]:
        """The TTL (ms) of every in-process operation that declares a cache, by
        ``(service, operation)``: HTTP operations with ``cache``, SDK operations
        declared with ``cache_ttl_ms``. Kafka services are never cached here."""
        cached: dict[tuple[str, str], int] = {}
        for name, definition in self.catalog.services.items():
            if isinstance(definition, HttpService):
                for operation, http in definition.operations.items():
                    if http.cache is not None:
                        cached[name, operation] = http.cache.ttl_ms
            elif isinstance(definition, PythonService):
                for operation, sdk in self.python_adapters[name].operations.items():
                    if sdk.cache_ttl_ms is not None:
                        cached[name, operation] = sdk.cache_ttl_ms
        return cached


def load_catalog(path: Path, *, environ: Mapping[str, str] | None = None) -> LoadedCatalog:
    """Read and check a service catalog file (YAML or JSON).

    Raises:
        CatalogLoadError: naming the file, the service and what to change.
    """
    try:
        raw = read_document(path)
    except OSError as error:
        raise CatalogLoadError(
            f"Cannot read the service catalog {path}: {error.strerror}."
        ) from None
    except UnreadableDocument as error:
        raise CatalogLoadError(f"{path} is not valid YAML: {error}.") from None
    return catalog_from_data(raw, source=str(path), environ=environ)


def catalog_from_data(
    raw: Any, *, source: str, environ: Mapping[str, str] | None = None
) -> LoadedCatalog:
    """Validate catalog data already parsed from a file or built in code."""
    environ = os.environ if environ is None else environ
    _check_remote_limits(raw, source)
    try:
        catalog = ServiceCatalog.model_validate(_expand_services(raw, source, environ))
    except ValidationError as error:
        details = "\n  ".join(describe_validation_error(error))
        raise CatalogLoadError(f"{source} is not a valid service catalog:\n  {details}") from None
    _check_caches(catalog, source)
    _check_concurrency(catalog, source)
    adapters = {
        name: import_service(definition.adapter, where=f"{source}, service '{name}'")
        for name, definition in catalog.services.items()
        if isinstance(definition, PythonService)
    }
    return LoadedCatalog(catalog=catalog, python_adapters=adapters, source=source)


def _check_caches(catalog: ServiceCatalog, source: str) -> None:
    """Refuse a cache on an operation that is not a safe read."""
    for name, definition in catalog.services.items():
        if not isinstance(definition, HttpService):
            continue
        for operation, http in definition.operations.items():
            if http.cache is not None and http.method != "GET":
                raise CatalogLoadError(
                    f"{source}, service '{name}', operation '{operation}': cache is set on a "
                    f"{http.method}, but only a GET can be cached (a cached write would be "
                    "performed for the first saga only); remove its cache, or make it a GET "
                    "if it only reads."
                )


_RESILIENCE_KEYS = ("circuit", "rate_limit", "max_concurrency")


def _check_remote_limits(raw: Any, source: str) -> None:
    """Refuse a circuit, rate limit or concurrency cap on a Kafka service, with the reason."""
    services = raw.get("services") if isinstance(raw, dict) else None
    if not isinstance(services, dict):
        return
    for name, definition in services.items():
        if not isinstance(definition, dict) or definition.get("kind") != "kafka":
            continue
        for key in _RESILIENCE_KEYS:
            if key in definition:
                raise CatalogLoadError(
                    f"{source}, service '{name}': {key} applies to services called in-process "
                    "(kind http or python), not to a Kafka service, whose remote worker takes "
                    "commands at its own pace; remove it."
                )


def _check_concurrency(catalog: ServiceCatalog, source: str) -> None:
    """Refuse a concurrency cap above the service's own connection pool."""
    for name, definition in catalog.services.items():
        if (
            isinstance(definition, HttpService)
            and definition.max_concurrency is not None
            and definition.max_connections is not None
            and definition.max_concurrency > definition.max_connections
        ):
            raise CatalogLoadError(
                f"{source}, service '{name}': max_concurrency ({definition.max_concurrency}) "
                f"is above max_connections ({definition.max_connections}), so calls would "
                "wait for a connection inside their timeout; lower max_concurrency or raise "
                "max_connections."
            )


_EXPANDED_KEYS = ("base_url", "command_topic")


def _expand_services(raw: Any, source: str, environ: Mapping[str, str]) -> Any:
    """Expand environment references in the fields that may hold them."""
    if not isinstance(raw, dict) or not isinstance(raw.get("services"), dict):
        return raw
    services: dict[str, Any] = {}
    for name, definition in raw["services"].items():
        if isinstance(definition, dict):
            where = f"{source}, service '{name}'"
            definition = dict(definition)  # noqa: PLW2901 (a copy, expanded below)
            for key in _EXPANDED_KEYS:
                if isinstance(definition.get(key), str):
                    definition[key] = expand_environment(
                        definition[key], where=where, environ=environ
                    )
            if isinstance(definition.get("headers"), dict):
                definition["headers"] = {
                    header: expand_environment(value, where=where, environ=environ)
                    if isinstance(value, str)
                    else value
                    for header, value in definition["headers"].items()
                }
            if isinstance(definition.get("operations"), dict):
                definition["operations"] = _expand_operations(
                    definition["operations"], where=where, environ=environ
                )
        services[name] = definition
    return {**raw, "services": services}


def _expand_operations(
    operations: dict[Any, Any], *, where: str, environ: Mapping[str, str]
) -> Any:
    """Expand references in each HTTP operation's ``headers`` and ``query`` values."""
    expanded: dict[Any, Any] = {}
    for operation, spec in operations.items():
        if isinstance(spec, dict):
            spec = dict(spec)  # noqa: PLW2901 (a copy, expanded below)
            for key in ("headers", "query"):
                if isinstance(spec.get(key), dict):
                    spec[key] = {
                        name: expand_environment(value, where=where, environ=environ)
                        if isinstance(value, str)
                        else value
                        for name, value in spec[key].items()
                    }
        expanded[operation] = spec
    return expanded


def import_service(reference: str, *, where: str) -> Service:
    """Import an SDK :class:`~handlers.sdk.Service` given as ``module:attribute``."""
    from handlers.sdk import Service

    module_name, _, attribute = reference.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise CatalogLoadError(f"{where}: cannot import {module_name!r} ({error}).") from None
    for part in attribute.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise CatalogLoadError(f"{where}: {module_name!r} has no attribute {attribute!r}.")
    if not isinstance(target, Service):
        raise CatalogLoadError(
            f"{where}: {reference!r} is a {type(target).__name__}, not a handlers.Service; "
            "point it at the Service object your adapter functions are registered on."
        )
    return target
