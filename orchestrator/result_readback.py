"""Find one request's result (or request) event by reading back one partition.

The client's reader sees every result published after it started, and keeps the
most recent ones. A result older than that (published before this process
started, or since forgotten) is still in Kafka: results are keyed by request id,
and a result goes to the result partition with the number of its request's
partition, which the producer chose as Kafka's default partitioner does
(``murmur2(key) % request partitions``). So one partition is read, from a point in
time on, never the whole topic. The request event itself is found the same way,
in the request topic's partition of its key (to tell "pending" from "never sent").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import murmur2


def partition_of(request_id: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives the key ``request_id``."""
    return int(murmur2(request_id.encode()) & 0x7FFFFFFF) % partitions


class PartitionReadback:
    """Reads a window of one partition of a topic to find one request id's event.

    Reads are serialised (one consumer, one read at a time), so many lookups at
    once queue rather than open a consumer each (callers bound the wait: the
    ingress gives each lookup a timeout, and cancelling one frees the consumer).
    The window bounds the cost: a lookup reads the records of one partition
    written in the last ``window_ms`` at most, up to ``until`` (the offsets beyond
    which the caller has seen everything itself) or the partition's end.
    """

    def __init__(
        self, bootstrap_servers: str, *, security: Mapping[str, Any] | None = None
    ) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            **(security or {}),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=50,
        )
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()

    async def find(
        self,
        request_id: str,
        *,
        topic: str,
        partition: int,
        window_ms: int,
        until: int | None = None,
    ) -> dict[str, Any] | None:
        """The first event of ``request_id`` (a JSON object with that ``request_id``,
        keyed by it) in the window, or None.

        Args:
            request_id: the request (the record key).
            topic: the topic to read (results or requests).
            partition: its partition to read.
            window_ms: read records written this long ago or later.
            until: stop at this offset (exclusive) instead of the partition's end.
        """
        if window_ms <= 0:
            return None
        tp = TopicPartition(topic, partition)
        key = request_id.encode()
        since_ms = time.time_ns() // 1_000_000 - window_ms
        async with self._lock:
            self._consumer.assign([tp])
            found = await self._consumer.offsets_for_times({tp: max(since_ms, 0)})
            start = found.get(tp)
            end = (await self._consumer.end_offsets([tp]))[tp]
            if until is not None:
                end = min(end, until)
            if start is None or start.offset >= end:
                return None
            self._consumer.seek(tp, start.offset)
            while await self._consumer.position(tp) < end:
                batch = await self._consumer.getmany(tp, timeout_ms=500)
                for record in batch.get(tp, []):
                    if record.offset >= end:
                        return None
                    if record.key == key and record.value is not None:
                        event = _decode(record.value, request_id)
                        if event is not None:
                            return event
            return None


class RequestReadback:
    """The client's read-backs: a request id's result, or its request, from Kafka.

    Results are read only up to where the client's reader started (it saw the rest
    itself), unless the reader has since forgotten results (:attr:`forgot_any`).
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        request_topic: str,
        result_topic: str,
        security: Mapping[str, Any] | None = None,
    ) -> None:
        self._readback = PartitionReadback(bootstrap_servers, security=security)
        self._request_topic = request_topic
        self._result_topic = result_topic
        self._partitions = 0
        self._started_at: dict[int, int] = {}
        self.forgot_any = False
        """Whether the client dropped a result from memory (then read to the end)."""

    async def start(self, *, request_partitions: int, started_at: dict[int, int]) -> None:
        """Start reading; ``started_at``: the result partitions' offsets the reader
        started at."""
        self._partitions = request_partitions
        self._started_at = dict(started_at)
        await self._readback.start()

    async def stop(self) -> None:
        await self._readback.stop()

    async def result(self, request_id: str, *, window_ms: int) -> dict[str, Any] | None:
        """The result event of ``request_id`` written in the last ``window_ms``, or None."""
        if self._partitions == 0:
            return None
        partition = partition_of(request_id, self._partitions)
        until = None if self.forgot_any else self._started_at.get(partition)
        return await self._readback.find(
            request_id,
            topic=self._result_topic,
            partition=partition,
            window_ms=window_ms,
            until=until,
        )

    async def request(self, request_id: str, *, window_ms: int) -> dict[str, Any] | None:
        """The request event of ``request_id`` written in the last ``window_ms``, or None."""
        if self._partitions == 0:
            return None
        return await self._readback.find(
            request_id,
            topic=self._request_topic,
            partition=partition_of(request_id, self._partitions),
            window_ms=window_ms,
        )


def _decode(value: bytes, request_id: str) -> dict[str, Any] | None:
    try:
        decoded = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if isinstance(decoded, dict) and decoded.get("request_id") == request_id:
        return decoded
    return None
