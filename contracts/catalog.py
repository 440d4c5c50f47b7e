"""The service catalog: which services a flow can call, and how to reach them.

Three kinds of service:

- ``http``: called in-process by the built-in HTTP adapter (no Kafka hop);
- ``kafka``: a remote adapter that consumes step commands from a topic and
  publishes replies (see :mod:`handlers.sdk`);
- ``python``: an adapter written with :mod:`handlers.sdk`, loaded in-process.

Strings in ``base_url`` and ``headers`` may use ``${VAR}`` or ``${VAR:-default}``
to read the environment, so secrets stay out of the file.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from contracts.base import Contract


class HttpOperation(Contract):
    """One HTTP call. ``{field}`` placeholders are filled from the step's input.

    In ``path`` and ``query`` values, placeholders are URL-encoded text. In
    ``body``, a string that is exactly ``"{field}"`` is replaced by the field's
    JSON value; other strings interpolate text.
    """

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    path: str = Field(pattern=r"^/", description="Path below the service's base_url.")
    query: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = Field(default=None, description="JSON body template; None sends no body.")


class HttpService(Contract):
    """A REST/JSON API called through the shared pooled HTTP client."""

    kind: Literal["http"]
    base_url: str = Field(pattern=r"^https?://")
    headers: dict[str, str] = Field(default_factory=dict)
    operations: dict[str, HttpOperation] = Field(min_length=1)


class KafkaService(Contract):
    """A remote adapter reached through its command topic."""

    kind: Literal["kafka"]
    command_topic: str | None = Field(default=None, description="Defaults to '<service>.commands'.")
    operations: list[str] = Field(
        default_factory=list, description="Known operations; empty accepts any name."
    )


class PythonService(Contract):
    """An adapter written with the SDK, loaded in-process from 'module:attribute'."""

    kind: Literal["python"]
    adapter: str = Field(pattern=r"^[\w.]+:[\w.]+$")


ServiceDefinition = Annotated[
    HttpService | KafkaService | PythonService, Field(discriminator="kind")
]


class ServiceCatalog(Contract):
    """Every service the flows of one deployment may call, by name."""

    schema_version: Literal[1] = 1
    services: dict[str, ServiceDefinition]


def command_topic_of(name: str, service: KafkaService) -> str:
    """Return the command topic of a Kafka service, applying the default."""
    return service.command_topic or f"{name}.commands"
