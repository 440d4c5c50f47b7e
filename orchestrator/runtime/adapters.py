"""Route each service of the catalog to how it is called.

In-process adapters (HTTP, SDK services loaded in-process) answer without a
Kafka hop; Kafka services get a step command on their command topic.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from contracts.catalog import HttpService, KafkaService, command_topic_of
from handlers.context import CallContext
from handlers.http import HttpAdapter
from handlers.outcome import CallOutcome
from handlers.sdk import Service
from orchestrator.catalog import LoadedCatalog


class InProcessAdapter(Protocol):
    """An adapter the coordinator awaits directly."""

    async def call(
        self, operation: str, payload: Any, *, context: CallContext, timeout_s: float
    ) -> CallOutcome:
        """Perform one call; must not raise."""
        ...


class SdkServiceAdapter:
    """Runs an SDK :class:`~handlers.sdk.Service` in the coordinator's process."""

    def __init__(self, service: Service) -> None:
        self._service = service

    async def call(
        self, operation: str, payload: Any, *, context: CallContext, timeout_s: float
    ) -> CallOutcome:
        """Invoke the operation with ``context``; it is cancelled once ``timeout_s`` has passed."""
        try:
            return await asyncio.wait_for(
                self._service.invoke(operation, payload, context), timeout_s
            )
        except TimeoutError:
            return CallOutcome.technical_error(
                "adapter.timeout",
                f"{self._service.name}.{operation} took longer than {timeout_s:g} s",
            )


@dataclass(frozen=True, slots=True)
class KafkaRoute:
    """A remote adapter reached through its command topic."""

    command_topic: str


def build_routes(
    catalog: LoadedCatalog, *, http_client: httpx.AsyncClient
) -> dict[str, InProcessAdapter | KafkaRoute]:
    """One route per service of the catalog."""
    routes: dict[str, InProcessAdapter | KafkaRoute] = {}
    for name, definition in catalog.catalog.services.items():
        if isinstance(definition, HttpService):
            routes[name] = HttpAdapter(name, definition, client=http_client)
        elif isinstance(definition, KafkaService):
            routes[name] = KafkaRoute(command_topic_of(name, definition))
        else:
            routes[name] = SdkServiceAdapter(catalog.python_adapters[name])
    return routes


async def close_routes(routes: dict[str, InProcessAdapter | KafkaRoute]) -> None:
    """Close the connection pools that services with their own limits opened."""
    for route in routes.values():
        if isinstance(route, HttpAdapter):
            await route.aclose()
