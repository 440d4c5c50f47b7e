"""Route each service of the catalog to how it is called.

In-process adapters (HTTP, SDK services loaded in-process) answer without a
Kafka hop; Kafka services get a step command on their command topic. The routes
also say which in-process operations are cached (:attr:`Routes.cached`), so the
dispatcher knows which calls go through its
:class:`~orchestrator.runtime.call_cache.CallCache`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from opentelemetry.trace import TracerProvider

from contracts.catalog import (
    CircuitPolicy,
    HttpService,
    KafkaService,
    RateLimitPolicy,
    command_topic_of,
)
from handlers.context import CallContext
from handlers.http import HttpAdapter
from handlers.outcome import CallOutcome
from handlers.sdk import Service
from orchestrator.catalog import LoadedCatalog
from orchestrator.runtime.adapter_loop import AdapterLoop


class InProcessAdapter(Protocol):
    """An adapter the coordinator awaits directly."""

    async def call(
        self, operation: str, payload: Any, *, context: CallContext, timeout_s: float
    ) -> CallOutcome:
        """Perform one call; must not raise."""
        ...


class SdkServiceAdapter:
    """Runs an SDK :class:`~handlers.sdk.Service` in the coordinator's process, on an
    event loop of its own (:class:`~orchestrator.runtime.adapter_loop.AdapterLoop`), so
    that user code that blocks stalls only its own calls, never the coordinator."""

    def __init__(self, service: Service) -> None:
        self._service = service
        self._loop = AdapterLoop(service.name)

    async def aclose(self) -> None:
        """Stop the service's event loop (and its thread)."""
        await self._loop.aclose()

    async def call(
        self, operation: str, payload: Any, *, context: CallContext, timeout_s: float
    ) -> CallOutcome:
        """Invoke the operation with ``context``; it is cancelled once ``timeout_s`` has passed."""
        try:
            return await self._loop.run(
                self._service.invoke(operation, payload, context), timeout_s=timeout_s
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
    """The route of each service by name, which in-process operations are cached,
    and the in-process services' resilience settings.

    A dict of routes, so callers look a service up as before; ``cached`` holds the
    TTL (ms) of each cached operation by ``(service, operation)``, and is empty
    when no operation declares a cache. ``circuits``, ``rate_limits`` and
    ``max_concurrency`` hold the catalog's ``circuit``, ``rate_limit`` and
    ``max_concurrency`` of the services that set them.
    """

    __slots__ = ("cached", "circuits", "max_concurrency", "rate_limits")

    def __init__(
        self,
        routes: Mapping[str, InProcessAdapter | KafkaRoute] | None = None,
        *,
        cached: Mapping[tuple[str, str], int] | None = None,
        circuits: Mapping[str, CircuitPolicy] | None = None,
        rate_limits: Mapping[str, RateLimitPolicy] | None = None,
        max_concurrency: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__(routes or {})
        self.cached: dict[tuple[str, str], int] = dict(cached or {})
        self.circuits: dict[str, CircuitPolicy] = dict(circuits or {})
        self.rate_limits: dict[str, RateLimitPolicy] = dict(rate_limits or {})
        self.max_concurrency: dict[str, int] = dict(max_concurrency or {})

    def concurrency_limits(self, *, shared_pool: int) -> dict[str, int]:
        """Calls in flight at most, by in-process service, for the bulkheads.

        An HTTP service is bounded by its connection pool (its own ``max_connections``),
        or, on the shared pool, by three quarters of it when other services share it
        too (one slow service must not hold every shared connection: the others keep
        a quarter), or by its ``max_concurrency`` if lower; an SDK service only by its
        ``max_concurrency``.
        """
        limits = dict(self.max_concurrency)
        sharing = [
            name
            for name, route in self.items()
            if isinstance(route, HttpAdapter) and not route.max_connections
        ]
        share = shared_pool if len(sharing) < 2 else max(1, shared_pool * 3 // 4)
        for name, route in self.items():
            if isinstance(route, HttpAdapter):
                pool = route.max_connections or share
                limits[name] = min(limits.get(name, pool), pool)
        return limits


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
        if not isinstance(definition, KafkaService):
            if definition.circuit is not None:
                routes.circuits[name] = definition.circuit
            if definition.rate_limit is not None:
                routes.rate_limits[name] = definition.rate_limit
            if definition.max_concurrency is not None:
                routes.max_concurrency[name] = definition.max_concurrency
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
    """Close the connection pools that services with their own limits opened, and
    stop the event loops of in-process SDK services."""
    for route in routes.values():
        if isinstance(route, HttpAdapter | SdkServiceAdapter):
            await route.aclose()
