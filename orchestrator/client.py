"""Publish request events and wait for their result events.

::

    async with OrchestratorClient(settings) as client:
        result = await client.run("order-details", {"order_id": "o-1"}, timeout_s=30)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import OrderedDict
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from contracts import cloudevents
from contracts.base import SCHEMA_VERSION
from orchestrator.errors import SetupError
from orchestrator.settings import CoordinatorSettings

MAX_KEPT_RESULTS = 10_000
"""Results a client remembers (the most recent ones), to wait for them later."""


class ResultTimeoutError(TimeoutError):
    """No result event arrived for a request within the time given."""

    code = "client.result_timeout"


class OrchestratorClient:
    """Sends requests to the request topic and reads results from the result topic.

    Results are read from every partition of the result topic, from its end at
    :meth:`start` on, so results of requests sent after start are never missed.
    One reader task per client reads them and hands each to whoever waits for it
    (a future per waiter), so any number of concurrent :meth:`run` calls share one
    consumer and no waiter polls.
    """

    def __init__(
        self, settings: CoordinatorSettings, *, source: str = "urn:orchestrator:client"
    ) -> None:
        self.settings = settings
        self._source = source
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap_servers, acks="all", enable_idempotence=True
        )
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            enable_auto_commit=False,
            fetch_max_wait_ms=20,
        )
        # Bounded: a long-lived client on a busy result topic must not grow forever.
        self._results: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.duplicates: list[dict[str, Any]] = []
        """Result events seen more than once for the same request id."""
        self.received_at: dict[str, float] = {}
        """``time.monotonic()`` at which each result was read (for latency figures)."""
        self._waiters: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._reader_error: BaseException | None = None

    async def __aenter__(self) -> OrchestratorClient:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Connect, and position the result reader at the end of the result topic."""
        await self._producer.start()
        await self._consumer.start()
        topic = self.settings.result_topic
        partitions = None
        for _ in range(50):
            partitions = self._consumer.partitions_for_topic(topic)
            if partitions:
                break
            await self._consumer._client.force_metadata_update()
            await asyncio.sleep(0.1)
        if not partitions:
            raise SetupError(
                f"The result topic {topic!r} does not exist: start the coordinator "
                "(`orchestrator run FLOWS`) first, or set ORCH_RESULT_TOPIC."
            )
        assigned = [TopicPartition(topic, number) for number in sorted(partitions)]
        self._consumer.assign(assigned)
        await self._consumer.seek_to_end(*assigned)
        for partition in assigned:
            await self._consumer.position(partition)
        self._reader = asyncio.create_task(self._read_results(), name="result-reader")

    async def stop(self) -> None:
        """Close connections."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        await self._consumer.stop()
        await self._producer.stop()

    async def _read_results(self) -> None:
        try:
            while True:
                batch = await self._consumer.getmany(timeout_ms=500)
                now = time.monotonic()
                for records in batch.values():
                    for record in records:
                        self._on_result(record.value, now)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            # Waiters must not hang on a reader that is gone: they get the error.
            self._reader_error = error
            for waiters in self._waiters.values():
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(error)
            raise

    def _on_result(self, value: bytes | None, received_at: float) -> None:
        try:
            result = orjson.loads(value or b"")
            request_id = result["request_id"]
        except (orjson.JSONDecodeError, TypeError, KeyError):
            return  # not a result event; someone else's problem
        if request_id in self._results:
            self.duplicates.append(result)
            return
        self._keep(result, received_at)
        for waiter in self._waiters.pop(request_id, ()):
            if not waiter.done():
                waiter.set_result(result)

    async def send(self, flow: str, input: dict[str, Any], *, request_id: str | None = None) -> str:
        """Publish one request event; returns its request id."""
        request_id = request_id or str(uuid.uuid4())
        payload = {
            "schema_version": SCHEMA_VERSION,
            "request_id": request_id,
            "flow": flow,
            "input": input,
        }
        headers = cloudevents.build_headers(
            event_id=request_id,
            event_type=cloudevents.TYPE_REQUEST,
            source=self._source,
            time_ms=time.time_ns() // 1_000_000,
        )
        await self._producer.send_and_wait(
            self.settings.request_topic,
            value=orjson.dumps(payload),
            key=request_id.encode(),
            headers=headers,
        )
        return request_id

    async def wait_for(self, request_id: str, *, timeout_s: float = 30.0) -> dict[str, Any]:
        """Return the result event of ``request_id`` (at once if it already came).

        Raises:
            ResultTimeoutError: no result within ``timeout_s``.
        """
        known = self._results.get(request_id)
        if known is not None:
            return known
        if self._reader_error is not None:
            raise self._reader_error
        if self._reader is None:
            raise SetupError("Start the client (`async with OrchestratorClient(...)`) first.")
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(request_id, [])
        waiters.append(waiter)
        try:
            return await asyncio.wait_for(waiter, timeout_s)
        except TimeoutError:
            raise ResultTimeoutError(
                f"No result for request {request_id} within {timeout_s:g} s."
            ) from None
        finally:
            pending = self._waiters.get(request_id)
            if pending is not None and waiter in pending:
                pending.remove(waiter)
                if not pending:
                    del self._waiters[request_id]

    def _keep(self, result: dict[str, Any], received_at: float) -> None:
        self._results[result["request_id"]] = result
        self.received_at[result["request_id"]] = received_at
        while len(self._results) > MAX_KEPT_RESULTS:
            forgotten, _ = self._results.popitem(last=False)
            self.received_at.pop(forgotten, None)
        del self.duplicates[:-MAX_KEPT_RESULTS]

    async def run(
        self,
        flow: str,
        input: dict[str, Any],
        *,
        request_id: str | None = None,
        timeout_s: float = 30.0,
    ) -> dict[str, Any]:
        """Send a request and wait for its result."""
        request_id = await self.send(flow, input, request_id=request_id)
        return await self.wait_for(request_id, timeout_s=timeout_s)
