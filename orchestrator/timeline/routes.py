"""The timeline's HTTP routes and a standalone app, on Starlette.

============================================  ========================================
route                                         answer
============================================  ========================================
``GET /timeline``                             the page (HTML, self-contained)
``GET /timeline/api/sagas``                   recent sagas, latest first; filters:
                                              ``flow``, ``status``, ``q`` (part of the
                                              request id), ``limit`` (default 200)
``GET /timeline/api/sagas/{request_id}``      one saga: steps, calls, errors (404 if
                                              the timeline does not hold it)
============================================  ========================================

:func:`timeline_routes` gives the routes for an app that owns the reader's life
(``orchestrator serve`` mounts them); :func:`create_timeline_app` is a whole app
that starts and stops its own reader.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from orchestrator.ingress.auth import TokenTable
from orchestrator.settings import CoordinatorSettings
from orchestrator.timeline.access import visible_flows
from orchestrator.timeline.page import PAGE_HTML
from orchestrator.timeline.reader import TimelineReader
from orchestrator.timeline.store import STATUSES, TimelineStore

DEFAULT_LIMIT = 200
MAX_LIMIT = 1_000

_PAGE_HEADERS = {
    # The page runs only its own inline script and loads nothing from elsewhere.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def timeline_routes(store: TimelineStore, *, tokens: TokenTable | None = None) -> list[BaseRoute]:
    """The page and its JSON API, reading from ``store``; with ``tokens``, a caller sees
    only the sagas of flows it may call (see :mod:`~orchestrator.timeline.access`)."""

    async def page(request: Request) -> Response:
        return HTMLResponse(PAGE_HTML, headers=_PAGE_HEADERS)

    async def sagas(request: Request) -> Response:
        params = request.query_params
        status = params.get("status") or None
        if status is not None and status not in STATUSES:
            return JSONResponse(
                {"error": f"status must be one of {', '.join(STATUSES)}, got {status!r}"},
                status_code=400,
            )
        try:
            limit = min(MAX_LIMIT, max(1, int(params.get("limit", DEFAULT_LIMIT))))
        except ValueError:
            return JSONResponse({"error": "limit must be a whole number"}, status_code=400)
        visible = visible_flows(tokens, request)
        found = store.sagas(
            flow=params.get("flow") or None,
            status=status,
            query=params.get("q") or None,
            limit=limit,
            visible=visible,
        )
        return JSONResponse(
            {
                "sagas": found,
                "flows": store.flows(visible=visible),
                "statuses": list(STATUSES),
                "held": len(store),
                "tokens": visible is not None,
            }
        )

    async def saga(request: Request) -> Response:
        request_id = request.path_params["request_id"]
        found = store.detail(request_id, visible=visible_flows(tokens, request))
        if found is None:
            return JSONResponse(
                {"error": "the timeline holds no saga with this request id"}, status_code=404
            )
        return JSONResponse(found)

    return [
        Route("/timeline", page, methods=["GET"]),
        Route("/timeline/api/sagas", sagas, methods=["GET"]),
        # ``path``: request ids may hold '/'.
        Route("/timeline/api/sagas/{request_id:path}", saga, methods=["GET"]),
    ]


class Timeline:
    """The store, its reader and its routes: what an app needs to serve the timeline.

    ::

        timeline = Timeline(settings, tokens=config.tokens)
        app = create_app(..., config=config, routes=timeline.routes, on_startup=[timeline.start],
                         on_shutdown=[timeline.stop])
    """

    def __init__(self, settings: CoordinatorSettings, *, tokens: TokenTable | None = None) -> None:
        self.store = TimelineStore(max_sagas=settings.timeline_max_sagas)
        self.reader = TimelineReader(settings, self.store)
        self.routes = timeline_routes(self.store, tokens=tokens)

    async def start(self, app: Starlette | None = None) -> None:
        """Start reading the topics (a start-up hook of the app)."""
        await self.reader.start()

    async def stop(self, app: Starlette | None = None) -> None:
        """Stop reading (a shutdown hook of the app)."""
        await self.reader.stop()


def create_timeline_app(
    settings: CoordinatorSettings, *, tokens: TokenTable | None = None
) -> Starlette:
    """A Starlette app serving only the timeline, starting and stopping its reader."""
    timeline = Timeline(settings, tokens=tokens)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await timeline.start()
        try:
            yield
        finally:
            await timeline.stop()

    return Starlette(routes=timeline.routes, lifespan=lifespan)
