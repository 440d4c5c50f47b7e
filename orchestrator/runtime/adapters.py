"""Route each service of the catalog to how it is called.

In-process adapters (HTTP, SDK services loaded in-process) answer without a
Kafka hop; Kafka services get a step command on their command topic. The routes
also say which in-process operations are cached (:attr:`Routes.cached`), so the
dispatcher knows which calls go through its
:class:`~orchestrator.runtime.call_cache.CallCache`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from opentelemetry.trace import TracerProvider

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


class Routes(dict[str, InProcessAdapter | KafkaRoute]):
    """The route of each service by name, and which in-process operations are cached.

    A dict of routes, so callers look a service up as before; ``cached`` holds the
    TTL (ms) of each cached operation by ``(service, operation)``, and is empty
    when no operation declares a cache.
    """

    __slots__ = ("cached",)

    def __init__(
        self,
        routes: Mapping[str, InProcessAdapter | KafkaRoute] | None = None,
        *,
        cached: Mapping[tuple[str, str], int] | None = None,
    ) -> None:
        super().__init__(routes or {})
        self.cached: dict[tuple[str, str], int] = dict(cached or {})


def build_routes(
    catalog: LoadedCatalog,
    *,
    http_client: httpx.AsyncClient,
    tracer_provider: TracerProvider | None = None,
) -> Routes:
    """One route per service of the catalog, with the catalog's cached operations.

    ``tracer_provider`` (tracing on) gives services with a pool of their own HTTP
    client spans too; the shared ``http_client`` is built with them already.
    """
    routes = Routes(cached=catalog.cached_operations())
    for name, definition in catalog.catalog.services.items():
        if isinstance(definition, HttpService):
            routes[name] = HttpAdapter(
                name, definition, client=http_client, tracer_provider=tracer_provider
            )
        elif isinstance(definition, KafkaService):
            routes[name] = KafkaRoute(command_topic_of(name, definition))
        else:
            routes[name] = SdkServiceAdapter(catalog.python_adapters[name])
    return routes


async def close_routes(routes: Mapping[str, InProcessAdapter | KafkaRoute]) -> None:
    """Close the connection pools that services with their own limits opened."""
    for route in routes.values():
        if isinstance(route, HttpAdapter):
            await route.aclose()
