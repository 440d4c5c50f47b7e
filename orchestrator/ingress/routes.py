"""The ingress's endpoints: run a flow, fetch a result, health, OpenAPI, metrics.

The ingress is a thin client (it never runs a saga): ``POST /flows/{name}``
publishes a request event through the one :class:`OrchestratorClient` of the
process and waits on a future that the client's one result reader completes. No
consumer per request and no polling: a waiter costs a future and a timer.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from aiokafka.errors import MessageSizeTooLargeError
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from orchestrator.flow import CompiledFlow
from orchestrator.ingress.auth import presented_token
from orchestrator.ingress.body import parse_input, read_limited
from orchestrator.ingress.config import (
    IDEMPOTENCY_KEY,
    PRODUCER_MAX_REQUEST_BYTES,
    IngressConfig,
    preferred_wait,
)
from orchestrator.ingress.errors import IngressRefusal
from orchestrator.ingress.metrics import IngressMetrics
from orchestrator.ingress.responses import answer, json_response, pending, refused
from orchestrator.ingress.waiting import READBACK_DELAY_S, ResultClient, ResultWaits

logger = logging.getLogger(__name__)

MAX_TRACKED = 100_000
"""Requests this ingress published that it remembers (to answer 202, not 404)."""


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
        self._waits = ResultWaits(client=client, config=config, metrics=metrics)

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
        if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
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
                return self._answer(request, answered, flow=name)
        with self._waits.slot():
            request_id = await self._publish(name, flow_input, key)
            # A retried key may have been answered before this process started: then
            # the coordinator drops the copy as a duplicate, and only Kafka has the
            # result. Read back only if it does not come at once (fresh keys do).
            result = await self._waits.result_within(
                request_id, wait_s, read_back_after=READBACK_DELAY_S if key else None
            )
        if result is None:
            return pending(request_id, name)
        return self._answer(request, result, flow=name)

    async def _publish(self, name: str, flow_input: dict[str, Any], key: str | None) -> str:
        try:
            request_id = await self._client.submit(name, flow_input, request_id=key)
        except MessageSizeTooLargeError:
            raise IngressRefusal.of(
                "ingress.body_too_large",
                f"The request event is larger than Kafka accepts (the ingress sends at most "
                f"{PRODUCER_MAX_REQUEST_BYTES} bytes, and the broker and topic have limits "
                f"of their own), although the body is within ORCH_INGRESS_MAX_BODY_BYTES "
                f"({self._config.max_body_bytes} bytes): send a smaller input.",
            ) from None
        except Exception as error:
            logger.warning("could not publish a request of %s: %s", name, error)
            raise IngressRefusal.of(
                "ingress.kafka_unavailable",
                f"The request could not be published to Kafka ({type(error).__name__}); "
                "retry it, with an Idempotency-Key to make retries safe.",
            ) from None
        if request_id not in self._published:
            # A key reused for another flow keeps the flow of its first request.
            self._remember(request_id, name)
        return request_id

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
        if result is not None:
            return self._answer(request, result), _flow_of(result)
        flow = self._published.get(request_id)
        wait_s = preferred_wait(request.headers.get("prefer"), 0.0)
        if flow is not None:
            self._authorize(request, flow)
            with self._waits.slot():
                result = await self._waits.result_within(request_id, wait_s, read_back_after=None)
            if result is None:
                # The client may have dropped the result from memory since.
                result = (await self._waits.lookup(request_id)).event
            if result is None:
                return pending(request_id, flow), flow
            return self._answer(request, result), _flow_of(result)
        # Published by another replica, or before this process started.
        if all(self._config.tokens.protects(name) for name in self._flows):
            # Before reading Kafka: when every flow asks for a token, a caller
            # without one costs nothing.
            self._authorize(request, None)
        if not IDEMPOTENCY_KEY.fullmatch(request_id):
            raise self._not_found(request_id, gave_up=False)
        found = await self._waits.lookup(request_id)
        if found.event is not None:
            return self._answer(request, found.event), _flow_of(found.event)
        asked = await self._waits.find_request(request_id)
        if asked.event is None:
            raise self._not_found(request_id, gave_up=found.gave_up or asked.gave_up)
        flow = _flow_of(asked.event)
        self._authorize(request, flow)
        # Any result from now on reaches this process's reader (each replica sees all).
        with self._waits.slot():
            result = await self._waits.result_within(request_id, wait_s, read_back_after=None)
        if result is None:
            return pending(request_id, flow), flow
        return self._answer(request, result), _flow_of(result)

    def _not_found(self, request_id: str, *, gave_up: bool) -> IngressRefusal:
        window_s = self._config.lookup_window_ms // 1000
        if gave_up:
            return IngressRefusal.of(
                "ingress.result_not_found",
                f"The look-up of request {request_id} in Kafka timed out (or too many ran "
                "at once): nothing is known of it yet; retry later.",
            )
        return IngressRefusal.of(
            "ingress.result_not_found",
            f"Neither a result nor the request {request_id} itself was published in the "
            f"last {window_s} s (it may not have been sent, or be older).",
        )

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

    def _answer(
        self, request: Request, result: dict[str, Any], *, flow: str | None = None
    ) -> Response:
        """Answer with ``result``, if the caller may see its flow; with ``flow``, the
        result must be of that flow (an Idempotency-Key reused for another flow is
        refused without showing the other flow's result)."""
        of = _flow_of(result)
        if flow is not None and of != flow:
            raise IngressRefusal.of(
                "ingress.idempotency_key_reused",
                f"The Idempotency-Key {result.get('request_id')} was already used for a "
                f"request of another flow; use a new key for {flow}.",
            )
        self._authorize(request, of)
        steps = self._flows[of].steps if of is not None and of in self._flows else ()
        return answer(
            result, optional_steps=frozenset(step.name for step in steps if step.optional)
        )

    def _remember(self, request_id: str, flow: str) -> None:
        self._published[request_id] = flow
        self._published.move_to_end(request_id)
        while len(self._published) > MAX_TRACKED:
            self._published.popitem(last=False)


def _flow_of(event: dict[str, Any]) -> str | None:
    flow = event.get("flow")
    return flow if isinstance(flow, str) else None
