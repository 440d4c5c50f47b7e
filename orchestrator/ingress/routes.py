"""The ingress's endpoints: run a flow, fetch a result, health, OpenAPI, metrics.

The ingress is a thin client (it never runs a saga): ``POST /flows/{name}``
publishes a request event through the one :class:`OrchestratorClient` of the
process and waits on a future that the client's one result reader completes. No
consumer per request and no polling: a waiter costs a future and a timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from orchestrator.client import ResultTimeoutError
from orchestrator.flow import CompiledFlow
from orchestrator.ingress.auth import presented_token
from orchestrator.ingress.body import parse_input, read_limited
from orchestrator.ingress.config import IDEMPOTENCY_KEY, IngressConfig, preferred_wait
from orchestrator.ingress.errors import IngressRefusal
from orchestrator.ingress.metrics import IngressMetrics
from orchestrator.ingress.responses import answer, json_response, pending, refused

logger = logging.getLogger(__name__)

MAX_TRACKED = 100_000
"""Requests this ingress published that it remembers (to answer 202, not 404)."""


class ResultClient(Protocol):
    """What the ingress needs of :class:`~orchestrator.client.OrchestratorClient`."""

    async def submit(
        self, flow: str, input: dict[str, Any], *, request_id: str | None = None
    ) -> str: ...

    async def wait_for(
        self,
        request_id: str,
        *,
        timeout: float = 30.0,  # noqa: ASYNC109
    ) -> dict[str, Any]: ...

    def result_of(self, request_id: str) -> dict[str, Any] | None: ...

    async def lookup(self, request_id: str, *, window_ms: int) -> dict[str, Any] | None: ...

    async def connected(self, *, timeout: float = 2.0) -> bool: ...  # noqa: ASYNC109


class IngressEndpoints:
    """The endpoints of one app, over one client."""

    def __init__(
        self,
        *,
        flows: Mapping[str, CompiledFlow],
        client: ResultClient,
        config: IngressConfig,
        metrics: IngressMetrics,
        openapi: bytes,
    ) -> None:
        self._flows = flows
        self._client = client
        self._config = config
        self._metrics = metrics
        self._openapi = openapi
        self._published: OrderedDict[str, str] = OrderedDict()
        """Request ids this ingress published, with their flow (most recent last)."""

    def routes(self) -> list[Route]:
        return [
            Route("/flows/{name}", self.run_flow, methods=["POST"]),
            Route("/requests/{request_id}", self.get_request, methods=["GET"]),
            Route("/openapi.json", self.openapi, methods=["GET"]),
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/readyz", self.readyz, methods=["GET"]),
            Route("/metrics", self.metrics, methods=["GET"]),
        ]

    # -- POST /flows/{name} --------------------------------------------------

    async def run_flow(self, request: Request) -> Response:
        began = time.monotonic()
        name = str(request.path_params["name"])
        try:
            response = await self._run_flow(request, name)
        except IngressRefusal as refusal:
            response = refused(refusal, flow=name)
        self._metrics.observe(
            route="/flows/{name}",
            flow=name,
            status=response.status_code,
            seconds=time.monotonic() - began,
        )
        return response

    async def _run_flow(self, request: Request, name: str) -> Response:
        if name not in self._flows:
            # Answered here: the ingress serves exactly the flows it loaded (its
            # OpenAPI document lists them), and Kafka is spared a dead letter.
            known = ", ".join(sorted(self._flows)) or "none"
            raise IngressRefusal(
                "flow.unknown",
                f"no flow named {name!r} (loaded flows: {known})",
                status=HTTPStatus.NOT_FOUND,
            )
        self._authorize(request, name)
        key = request.headers.get("idempotency-key")
        if key is not None and not IDEMPOTENCY_KEY.match(key):
            raise IngressRefusal.of(
                "ingress.invalid_idempotency_key",
                "The Idempotency-Key header must be 1 to 200 characters of A-Z a-z 0-9 "
                f". _ : ~ - (it becomes the request id), got {key[:40]!r}.",
            )
        body = await read_limited(request, limit=self._config.max_body_bytes)
        flow_input = parse_input(body)
        wait_s = preferred_wait(request.headers.get("prefer"), self._config.wait_ms / 1000)
        if key is not None:
            answered = self._client.result_of(key)
            if answered is not None:
                return answer(answered)
        try:
            request_id = await self._client.submit(name, flow_input, request_id=key)
        except Exception as error:
            logger.warning("could not publish a request of %s: %s", name, error)
            raise IngressRefusal.of(
                "ingress.kafka_unavailable",
                f"The request could not be published to Kafka ({type(error).__name__}); "
                "retry it, with an Idempotency-Key to make retries safe.",
            ) from None
        self._remember(request_id, name)
        # A retried key may have been answered before this process started: then the
        # coordinator drops the copy as a duplicate, and only Kafka has the result.
        result = await self._await_result(request_id, wait_s, read_back=key is not None)
        if result is None:
            return pending(request_id, name)
        return answer(result)

    # -- GET /requests/{id} --------------------------------------------------

    async def get_request(self, request: Request) -> Response:
        began = time.monotonic()
        request_id = str(request.path_params["request_id"])
        flow: str | None = None
        try:
            response, flow = await self._get_request(request, request_id)
        except IngressRefusal as refusal:
            response = refused(refusal, request_id=request_id)
        self._metrics.observe(
            route="/requests/{request_id}",
            flow=flow,
            status=response.status_code,
            seconds=time.monotonic() - began,
        )
        return response

    async def _get_request(self, request: Request, request_id: str) -> tuple[Response, str | None]:
        result = self._client.result_of(request_id)
        flow = self._published.get(request_id)
        if result is None and flow is not None:
            self._authorize(request, flow)
            wait_s = preferred_wait(request.headers.get("prefer"), 0.0)
            result = await self._await_result(request_id, wait_s, read_back=False)
            if result is None:
                return pending(request_id, flow), flow
        if result is None and all(self._config.tokens.protects(name) for name in self._flows):
            # Before reading Kafka: when every flow asks for a token, a caller
            # without one costs nothing.
            self._authorize(request, None)
        if result is None and IDEMPOTENCY_KEY.match(request_id):
            result = await self._client.lookup(request_id, window_ms=self._config.lookup_window_ms)
        if result is None:
            raise IngressRefusal.of(
                "ingress.result_not_found",
                f"No result for request {request_id} in the last "
                f"{self._config.lookup_window_ms // 1000} s, and this ingress is not waiting "
                "for one (it may run on another ingress, or not have been sent).",
            )
        flow = result.get("flow")
        self._authorize(request, flow if isinstance(flow, str) else None)
        return answer(result), flow if isinstance(flow, str) else None

    # -- the rest --------------------------------------------------------------

    async def openapi(self, request: Request) -> Response:
        return Response(self._openapi, media_type="application/json")

    async def healthz(self, request: Request) -> Response:
        return json_response(HTTPStatus.OK, {"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        if await self._client.connected():
            return json_response(HTTPStatus.OK, {"status": "ready"})
        return json_response(
            HTTPStatus.SERVICE_UNAVAILABLE,
            {
                "status": "unavailable",
                "reason": "Kafka is not reachable, or the result reader stopped",
            },
        )

    async def metrics(self, request: Request) -> Response:
        return Response(self._metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    # -- helpers -----------------------------------------------------------------

    def _authorize(self, request: Request, flow: str | None) -> None:
        tokens = self._config.tokens
        if flow is not None and not tokens.protects(flow):
            return
        if flow is None and not tokens.enabled:
            return
        token = presented_token(
            request.headers.get("authorization"), request.headers.get("x-api-key")
        )
        if not tokens.allows(flow, token):
            raise IngressRefusal.of(
                "ingress.unauthorized",
                "A valid token is needed: send `Authorization: Bearer <token>` or "
                "`X-API-Key: <token>`."
                if token is None
                else "The token is not valid for this flow.",
            )

    def _remember(self, request_id: str, flow: str) -> None:
        self._published[request_id] = flow
        self._published.move_to_end(request_id)
        while len(self._published) > MAX_TRACKED:
            self._published.popitem(last=False)

    async def _await_result(
        self, request_id: str, wait_s: float, *, read_back: bool
    ) -> dict[str, Any] | None:
        """The result within ``wait_s``, from the reader (or a read-back), else None."""
        self._metrics.waiting.inc()
        waiter = asyncio.ensure_future(self._client.wait_for(request_id, timeout=wait_s))
        running: set[asyncio.Future[Any]] = {waiter}
        if read_back:
            running.add(
                asyncio.ensure_future(
                    self._client.lookup(request_id, window_ms=self._config.lookup_window_ms)
                )
            )
        try:
            while running:
                done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task is waiter:
                        error = task.exception()
                        if isinstance(error, ResultTimeoutError):
                            return None
                        if error is not None:
                            # The result reader failed: nothing will answer here.
                            logger.warning("waiting for %s failed: %s", request_id, error)
                            raise IngressRefusal.of(
                                "ingress.kafka_unavailable",
                                f"The result reader stopped ({type(error).__name__}); the "
                                f"request {request_id} may still run: fetch it from "
                                f"/requests/{request_id} later.",
                            )
                        return task.result()  # type: ignore[no-any-return]
                    if task.exception() is not None:
                        logger.warning("reading back %s failed: %s", request_id, task.exception())
                    elif task.result() is not None:
                        return task.result()  # type: ignore[no-any-return]
            return None
        finally:
            for task in running:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self._metrics.waiting.dec()
