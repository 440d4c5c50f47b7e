"""Publish request events and wait for their result events.

::

    async with OrchestratorClient(bootstrap_servers="127.0.0.1:9092") as client:
        result = await client.run("order-details", {"order_id": "o-1"}, timeout=5)
        request_id = await client.submit("order-details", {"order_id": "o-2"})
        later = await client.wait_for(request_id, timeout=30)
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
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError
from aiokafka.protocol.metadata import MetadataRequest

from contracts import cloudevents
from contracts.base import SCHEMA_VERSION
from handlers.tracing import current_trace_headers
from orchestrator.errors import SetupError
from orchestrator.kafka_refusals import access_denied
from orchestrator.kafka_security import client_options
from orchestrator.result_readback import RequestReadback
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

    Args:
        settings: where Kafka is and which topics to use. Without it, the
            settings come from the environment (``KAFKA_BOOTSTRAP_SERVERS``,
            ``ORCH_*``, as ``orchestrator send`` reads them).
        bootstrap_servers: overrides the settings' brokers.
        request_topic: overrides the settings' request topic.
        result_topic: overrides the settings' result topic.
        source: the CloudEvents ``source`` of the requests it publishes.
        max_kept_results: how many recent results it remembers.
    """

    def __init__(
        self,
        settings: CoordinatorSettings | None = None,
        *,
        bootstrap_servers: str | None = None,
        request_topic: str | None = None,
        result_topic: str | None = None,
        source: str = "urn:orchestrator:client",
        max_kept_results: int = MAX_KEPT_RESULTS,
    ) -> None:
        overrides = {
            name: value
            for name, value in (
                ("bootstrap_servers", bootstrap_servers),
                ("request_topic", request_topic),
                ("result_topic", result_topic),
            )
            if value is not None
        }
        if settings is None:
            settings = CoordinatorSettings.from_env(None, **overrides)
        elif overrides:
            settings = settings.replace(**overrides)
        if max_kept_results < 1:
            raise SetupError(f"max_kept_results must be at least 1, got {max_kept_results}.")
        self.settings = settings
        self._source = source
        self._max_kept = max_kept_results
        security = client_options(settings)
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            **security,
        )
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            **security,
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
        self._readback = RequestReadback(
            settings.bootstrap_servers,
            request_topic=settings.request_topic,
            result_topic=settings.result_topic,
            security=security,
        )

    async def __aenter__(self) -> OrchestratorClient:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Connect, and position the result reader at the end of the result topic.

        Raises:
            SetupError: the result topic does not exist.
        """
        try:
            await self._start()
        except BaseException:
            # Nothing half-open is left behind (aiokafka logs unclosed clients).
            await self.stop()
            raise

    async def _start(self) -> None:
        await self._consumer.start()
        topic = self.settings.result_topic
        if not self._consumer.partitions_for_topic(topic):
            await self._check_access(topic, "Read on it (the client reads its results there)")
        await self._producer.start()
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
        # The reader sees everything after these offsets; read-backs stop there.
        started_at = {tp.partition: await self._consumer.position(tp) for tp in assigned}
        # As the producer's default partitioner will count them (it fetches the
        # topic's metadata if need be; the consumer's may not hold this topic).
        request_topic = self.settings.request_topic
        try:
            request_partitions = len(
                await asyncio.wait_for(self._producer.partitions_for(request_topic), 10)
            )
        except TopicAuthorizationFailedError:
            raise SetupError(
                access_denied(self.settings, f"topic {request_topic!r}", "Write on it")
            ) from None
        except (TimeoutError, KafkaError):
            raise SetupError(
                f"The request topic {request_topic!r} does not exist: start the coordinator "
                "(`orchestrator run FLOWS`) first, or set ORCH_REQUEST_TOPIC."
            ) from None
        await self._readback.start(request_partitions=request_partitions, started_at=started_at)
        self._reader = asyncio.create_task(self._read_results(), name="result-reader")

    async def _check_access(self, topic: str, grant: str) -> None:
        """Refuse with one sentence if Kafka denies this principal ``topic`` (it
        then hides the topic, which would otherwise read as "does not exist")."""
        # An explicit metadata request for the topic (a request for all topics
        # leaves out the ones this principal may not see), which must not create
        # it: a client started before the coordinator would make a one-partition
        # topic that the coordinator then refuses (partition counts must match).
        client = self._consumer._client
        try:
            node = client.get_random_node()
            if node is None:
                return
            response = await asyncio.wait_for(
                client.send(node, MetadataRequest([topic], allow_auto_topic_creation=False)), 5
            )
        except (TimeoutError, KafkaError):
            return  # missing or unreachable: said below, once the wait for it is over
        for entry in response.topics:
            if entry[0] == TopicAuthorizationFailedError.errno:
                raise SetupError(access_denied(self.settings, f"topic {topic!r}", grant))

    async def stop(self) -> None:
        """Close connections; whoever still waits for a result gets an error at once."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            if self._reader_error is None:
                self._fail_waiters(ConnectionError("The client stopped: no result will come."))
        await self._readback.stop()
        await self._consumer.stop()
        await self._producer.stop()

    @property
    def reading(self) -> bool:
        """Whether the result reader runs (started, not stopped, not failed)."""
        return self._reader is not None and not self._reader.done()

    async def connected(self, *, timeout: float = 2.0) -> bool:  # noqa: ASYNC109
        """Whether Kafka answers now: a metadata request succeeds within ``timeout``
        seconds and the result reader runs (for a readiness probe)."""
        if not self.reading:
            return False
        try:
            updated = await asyncio.wait_for(self._producer.client.force_metadata_update(), timeout)
        except (TimeoutError, OSError, KafkaError):
            return False
        return bool(updated)

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
            self._fail_waiters(error)
            raise

    def _fail_waiters(self, error: BaseException) -> None:
        self._reader_error = error
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(error)

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

    async def submit(
        self, flow: str, input: dict[str, Any], *, request_id: str | None = None
    ) -> str:
        """Publish one request event; returns its request id (a new UUID by default).

        The same ``request_id`` sent twice runs once and is answered once.
        """
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
        # The caller's span (the ingress's, a service's) becomes the saga's parent.
        headers.extend((name, value.encode()) for name, value in current_trace_headers().items())
        await self._producer.send_and_wait(
            self.settings.request_topic,
            value=orjson.dumps(payload),
            key=request_id.encode(),
            headers=headers,
        )
        return request_id

    send = submit
    """The former name of :meth:`submit`."""

    def result_of(self, request_id: str) -> dict[str, Any] | None:
        """The result event of ``request_id`` if the reader has it in memory, else None."""
        return self._results.get(request_id)

    async def lookup(self, request_id: str, *, window_ms: int) -> dict[str, Any] | None:
        """The result event of ``request_id``, from memory or read back from Kafka
        (written in the last ``window_ms``; see :class:`RequestReadback`), else None."""
        if request_id not in self._results:
            found = await self._readback.result(request_id, window_ms=window_ms)
            if found is not None and request_id not in self._results:
                self._keep(found, time.monotonic())
        return self._results.get(request_id)

    async def find_request(self, request_id: str, *, window_ms: int) -> dict[str, Any] | None:
        """The request event of ``request_id`` if it was published in the last
        ``window_ms`` (by any process), read back from its request partition."""
        return await self._readback.request(request_id, window_ms=window_ms)

    async def wait_for(
        self,
        request_id: str,
        *,
        timeout: float = 30.0,  # noqa: ASYNC109 (the issue's API: timeout=5, in seconds)
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        """Return the result event of ``request_id`` (at once if it already came).

        Args:
            request_id: the request to wait for.
            timeout: seconds to wait.
            timeout_s: the former name of ``timeout`` (deprecated; wins when given).

        Raises:
            ResultTimeoutError: no result within ``timeout`` seconds.
        """
        if timeout_s is not None:
            timeout = timeout_s
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
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            raise ResultTimeoutError(
                f"No result for request {request_id} within {timeout:g} s."
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
        while len(self._results) > self._max_kept:
            forgotten, _ = self._results.popitem(last=False)
            self.received_at.pop(forgotten, None)
            self._readback.forgot_any = True
        del self.duplicates[: -self._max_kept]

    async def run(
        self,
        flow: str,
        input: dict[str, Any],
        *,
        request_id: str | None = None,
        timeout: float = 30.0,  # noqa: ASYNC109 (the issue's API: timeout=5, in seconds)
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        """Send a request and wait for its result event.

        Args:
            flow: the flow to run.
            input: the flow's input.
            request_id: the request id (the idempotency key of the run); a new
                UUID by default.
            timeout: seconds to wait for the result.
            timeout_s: the former name of ``timeout`` (deprecated; wins when given).

        Raises:
            ResultTimeoutError: no result within ``timeout`` seconds.
        """
        request_id = await self.submit(flow, input, request_id=request_id)
        return await self.wait_for(request_id, timeout=timeout, timeout_s=timeout_s)
