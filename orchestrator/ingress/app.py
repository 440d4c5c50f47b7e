"""Build the ingress's ASGI app (Starlette): one function, :func:`create_app`.

Whatever the app serves besides the flows comes in through its arguments: more
routes (a page, an API), middleware (tracing), and start-up and shutdown hooks.
The app's state holds what those may need: ``app.state.client`` (the
:class:`OrchestratorClient`), ``app.state.registry`` (the flows),
``app.state.config``, ``app.state.metrics`` (the Prometheus registry is
``app.state.metrics.registry``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute

from orchestrator.flow_files import FlowRegistry
from orchestrator.ingress.config import IngressConfig
from orchestrator.ingress.metrics import IngressMetrics
from orchestrator.ingress.openapi import build_openapi
from orchestrator.ingress.routes import IngressEndpoints
from orchestrator.ingress.status import COMPLETE_HEADER, REQUEST_ID_HEADER
from orchestrator.ingress.waiting import ResultClient

Hook = Callable[[Starlette], Awaitable[None]]
"""A start-up or shutdown hook: an async function of the app."""


def create_app(
    *,
    registry: FlowRegistry,
    client: ResultClient,
    config: IngressConfig,
    routes: Sequence[BaseRoute] = (),
    middleware: Sequence[Middleware] = (),
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
) -> Starlette:
    """The ingress app for ``registry``, publishing and waiting through ``client``.

    Args:
        registry: the loaded flows (their names and input schemas; nothing runs here).
        client: a started client; the caller owns it (starts it before serving,
            stops it after).
        config: waits, limits, CORS origins and tokens.
        routes: more routes, served after the ingress's own.
        middleware: more middleware, outermost first, inside CORS.
        on_startup: run in order when the server starts, before it takes requests.
        on_shutdown: run in reverse order when it stops.
    """
    metrics = IngressMetrics(registry.flows)
    document = build_openapi(
        [flow.definition for flow in registry.flows.values()], tokens=config.tokens
    )
    endpoints = IngressEndpoints(
        flows=registry.flows,
        client=client,
        config=config,
        metrics=metrics,
        openapi=orjson.dumps(document),
    )
    stack: list[Middleware] = []
    if config.cors_origins:
        stack.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(config.cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=[
                    "Authorization",
                    "Content-Type",
                    "Idempotency-Key",
                    "Prefer",
                    "X-API-Key",
                ],
                expose_headers=["Location", COMPLETE_HEADER, REQUEST_ID_HEADER],
            )
        )
    stack.extend(middleware)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        for hook in on_startup:
            await hook(app)
        try:
            yield
        finally:
            for hook in reversed(on_shutdown):
                await hook(app)

    app = Starlette(routes=[*endpoints.routes(), *routes], middleware=stack, lifespan=lifespan)
    app.state.client = client
    app.state.registry = registry
    app.state.config = config
    app.state.metrics = metrics
    app.state.openapi = document
    return app
