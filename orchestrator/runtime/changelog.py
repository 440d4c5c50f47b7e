"""The saga state log: a compacted Kafka topic that is every running saga's memory.

One changelog partition per request partition (same number): the instance that
owns request partition ``p`` writes and restores changelog partition ``p``.

Keys and values (JSON by orjson unless said otherwise):

=========================  ===========================================================
key                        value
=========================  ===========================================================
``s:<request id>``         the saga's start: flow name, fingerprint and version, input,
                           start time, reply secret (see ``reply_auth``); replaced by
                           ``{"done": <ms>}`` when its result
                           is published (the *finished marker*, which recognises
                           duplicates for ``dedupe_window_ms``, then is tombstoned)
``e:<request id>/<n>``     the ``n``-th event that changed the saga (a reply with its
                           output, a timeout, a retry timer, the flow deadline)
``f:<fingerprint>``        a flow definition a saga started under, so a saga restored
                           after a deploy keeps the version it started with
``c:<i>/<n>:<key>``        part ``i`` of ``n`` of a value over :data:`CHUNK_BYTES`; the
                           record under ``<key>`` then says ``#chunks:<n>``
=========================  ===========================================================

When a saga ends, its event keys (and their parts) get tombstones, so compaction
leaves only the finished marker. Records of one partition are written in order by
one writer and one idempotent producer, so a saga's recorded events are always a
prefix of the events it decided on.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from orchestrator.flow import CompiledFlow
from orchestrator.saga import CallReplied, CallTimedOut, RetryDue, SagaDeadlinePassed, SagaEvent

logger = logging.getLogger(__name__)

CHUNK_BYTES = 512 * 1024
"""Values above this are split, so no state record nears Kafka's 1 MiB default limit."""
_CHUNKED = b"#chunks:"

Record = tuple[bytes, bytes | None]
"""A changelog key and value (None is a tombstone)."""


# -- keys and values ------------------------------------------------------------


def saga_key(request_id: str) -> bytes:
    return f"s:{request_id}".encode()


def event_key(request_id: str, number: int) -> bytes:
    return f"e:{request_id}/{number}".encode()


def flow_key(fingerprint: str) -> bytes:
    return f"f:{fingerprint}".encode()


def fingerprint(flow: CompiledFlow) -> str:
    """A short hash of the flow's definition: equal definitions, equal fingerprints."""
    canonical = orjson.dumps(flow.definition.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(canonical, digest_size=10).hexdigest()


def split(key: bytes, value: bytes) -> list[Record]:
    """The records that store ``value`` under ``key``: itself, or its parts then a pointer."""
    if len(value) <= CHUNK_BYTES:
        return [(key, value)]
    parts = [value[start : start + CHUNK_BYTES] for start in range(0, len(value), CHUNK_BYTES)]
    count = len(parts)
    records: list[Record] = [(_part_key(key, i, count), part) for i, part in enumerate(parts)]
    records.append((key, _CHUNKED + str(count).encode()))
    return records


def tombstones(keys: Iterable[bytes]) -> list[Record]:
    """Tombstones for ``keys`` (record keys as written, parts included)."""
    return [(key, None) for key in keys]


def _part_key(key: bytes, index: int, count: int) -> bytes:
    return b"c:%d/%d:" % (index, count) + key


def encode_event(event: SagaEvent) -> bytes:
    """One saga event as a changelog value."""
    if isinstance(event, CallReplied):
        body: dict[str, Any] = {
            "k": "reply",
            "call": event.call,
            "attempt": event.attempt,
            "at": event.at_ms,
            "status": event.status,
            "output": event.output,
        }
        if event.error_code is not None:
            body["code"] = event.error_code
            body["message"] = event.error_message
        if event.retry_after_ms is not None:
            body["retry_after"] = event.retry_after_ms
    elif isinstance(event, CallTimedOut):
        body = {"k": "timeout", "call": event.call, "attempt": event.attempt, "at": event.at_ms}
    elif isinstance(event, RetryDue):
        body = {"k": "retry", "call": event.call, "attempt": event.attempt, "at": event.at_ms}
    else:
        body = {"k": "deadline", "at": event.at_ms}
    return orjson.dumps(body)


def decode_event(value: bytes) -> SagaEvent:
    """The inverse of :func:`encode_event`."""
    body = orjson.loads(value)
    kind = body["k"]
    if kind == "reply":
        return CallReplied(
            call=body["call"],
            attempt=body["attempt"],
            status=body["status"],
            at_ms=body["at"],
            output=body.get("output"),
            error_code=body.get("code"),
            error_message=body.get("message", ""),
            retry_after_ms=body.get("retry_after"),
        )
    if kind == "timeout":
        return CallTimedOut(call=body["call"], attempt=body["attempt"], at_ms=body["at"])
    if kind == "retry":
        return RetryDue(call=body["call"], attempt=body["attempt"], at_ms=body["at"])
    return SagaDeadlinePassed(at_ms=body["at"])


# -- writing --------------------------------------------------------------------


class ChangelogError(RuntimeError):
    """The changelog could not be written: the coordinator must stop and restore."""


@dataclass(slots=True)
class _Batch:
    partition: int
    records: list[Record]
    on_acked: Callable[[], None] | None


class ChangelogWriter:
    """Appends records in order, pipelined: nothing on the critical path awaits them.

    :meth:`append` queues records and returns at once; one task hands them to the
    producer in order (so a partition's records keep their order) and runs each
    batch's ``on_acked`` once Kafka has acknowledged all of it (``acks=all``).
    A write that fails for good stops the writer with :class:`ChangelogError`:
    continuing would let the saga's memory fall behind what it did.
    """

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self._producer = producer
        self._topic = topic
        self._queue: collections.deque[_Batch] = collections.deque()
        self._wake = asyncio.Event()
        self._unacked = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._error: BaseException | None = None
        self._closed = False

    def append(
        self, partition: int, records: list[Record], on_acked: Callable[[], None] | None = None
    ) -> None:
        """Queue ``records`` for ``partition``; ``on_acked`` runs once all are acknowledged."""
        self._queue.append(_Batch(partition, records, on_acked))
        self._unacked += 1
        self._idle.clear()
        self._wake.set()

    def close(self) -> None:
        """End :meth:`run` (records still queued are not written)."""
        self._closed = True
        self._wake.set()

    async def flush(self) -> None:
        """Wait until every record appended so far is acknowledged (or the writer failed)."""
        while not self._idle.is_set() and self._error is None:
            await asyncio.wait_for(self._idle.wait(), timeout=None)

    async def run(self) -> None:
        """Hand queued records to the producer, in order; runs until closed or failed."""
        while not self._closed:
            await self._wake.wait()
            self._wake.clear()
            if self._error is not None:
                raise ChangelogError(f"writing the saga changelog failed: {self._error}")
            while self._queue:
                batch = self._queue.popleft()
                deliveries = []
                for key, value in batch.records:
                    try:
                        delivery = await self._producer.send(
                            self._topic, key=key, value=value, partition=batch.partition
                        )
                    except Exception as error:  # not even queued: too large, closed, ...
                        raise ChangelogError(
                            f"writing the saga changelog failed: {error}"
                        ) from error
                    deliveries.append(delivery)
                gathered = asyncio.gather(*deliveries)
                gathered.add_done_callback(functools.partial(self._acked, batch=batch))

    def _acked(self, done: asyncio.Future[list[Any]], *, batch: _Batch) -> None:
        self._unacked -= 1
        if done.cancelled() or done.exception() is not None:
            self._error = done.exception() if not done.cancelled() else asyncio.CancelledError()
            logger.critical("a saga changelog write failed for good: %r", self._error)
            self._wake.set()
        elif batch.on_acked is not None:
            try:
                batch.on_acked()
            except Exception:
                logger.exception("a changelog acknowledgement callback failed")
        if self._unacked == 0:
            self._idle.set()


# -- reading --------------------------------------------------------------------


@dataclass(slots=True)
class RestoredPartition:
    """What one changelog partition holds."""

    flows: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Flow definitions by fingerprint."""
    sagas: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Running sagas' start records, by request id."""
    events: dict[str, dict[int, bytes]] = field(default_factory=dict)
    """Recorded events by request id, then by number."""
    keys: dict[str, list[bytes]] = field(default_factory=dict)
    """The event keys (parts included) of each running saga, for its tombstones."""
    markers: dict[str, int] = field(default_factory=dict)
    """Finished request ids and when they finished."""
    orphans: list[Record] = field(default_factory=list)
    """Tombstones for event keys no running saga owns (left by a crash)."""


async def read_changelog(
    consumer: AIOKafkaConsumer, topic: str, partitions: Iterable[int]
) -> dict[int, RestoredPartition]:
    """Read the given changelog partitions from their start to their current end."""
    wanted = [TopicPartition(topic, p) for p in partitions]
    restored = {tp.partition: RestoredPartition() for tp in wanted}
    if not wanted:
        return restored
    raw: dict[int, dict[bytes, bytes]] = {tp.partition: {} for tp in wanted}
    async for partition, key, value in read_to_end(consumer, wanted):
        if value is None:
            raw[partition].pop(key, None)
        else:
            raw[partition][key] = value
    for number, records in raw.items():
        _parse(records, restored[number])
    return restored


async def read_to_end(
    consumer: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    *,
    start: dict[TopicPartition, int] | None = None,
) -> AsyncIterator[tuple[int, bytes, bytes | None]]:
    """Yield ``(partition, key, value)`` of every record up to the partitions' end now."""
    consumer.assign(partitions)
    ends = await consumer.end_offsets(partitions)
    # Explicit seeks: seek_to_beginning can lose a race with the reset that
    # assign() starts in the background.
    starts = start if start is not None else await consumer.beginning_offsets(partitions)
    remaining = set()
    for tp in partitions:
        position = starts.get(tp, ends[tp])
        consumer.seek(tp, position)
        if position < ends[tp]:
            remaining.add(tp)
    while remaining:
        batch = await consumer.getmany(*remaining, timeout_ms=500)
        for tp, records in batch.items():
            for record in records:
                if record.offset < ends[tp]:
                    yield tp.partition, record.key, record.value
        for tp in list(remaining):
            if await consumer.position(tp) >= ends[tp]:
                remaining.discard(tp)


def _joined(records: dict[bytes, bytes], key: bytes, value: bytes) -> bytes | None:
    if not value.startswith(_CHUNKED):
        return value
    count = int(value[len(_CHUNKED) :])
    parts = [records.get(_part_key(key, i, count)) for i in range(count)]
    if any(part is None for part in parts):
        return None
    return b"".join(part for part in parts if part is not None)


def _parse(records: dict[bytes, bytes], into: RestoredPartition) -> None:
    events: dict[str, dict[int, bytes]] = {}
    keys: dict[str, list[bytes]] = {}
    for key, value in records.items():
        kind, _, rest = key.decode(errors="replace").partition(":")
        if kind == "c":
            continue
        joined = _joined(records, key, value)
        if joined is None:
            continue  # parts missing: written by a writer that died midway
        if kind == "s":
            body = orjson.loads(joined)
            if "done" in body:
                into.markers[rest] = int(body["done"])
            else:
                into.sagas[rest] = body
        elif kind == "e":
            request_id, _, number = rest.rpartition("/")
            events.setdefault(request_id, {})[int(number)] = joined
            written = keys.setdefault(request_id, [])
            written.append(key)
            if value.startswith(_CHUNKED):
                count = int(value[len(_CHUNKED) :])
                written.extend(_part_key(key, i, count) for i in range(count))
        elif kind == "f":
            into.flows[rest] = orjson.loads(joined)
    for request_id, numbered in events.items():
        if request_id in into.sagas:
            into.events[request_id] = numbered
            into.keys[request_id] = keys[request_id]
        else:
            into.orphans.extend(tombstones(keys[request_id]))


def recorded_events(numbered: dict[int, bytes]) -> list[SagaEvent]:
    """Events ``1..n`` in order, up to the first gap (later ones cannot be trusted)."""
    events = []
    number = 1
    while number in numbered:
        events.append(decode_event(numbered[number]))
        number += 1
    return events


class KafkaReader:
    """A consumer outside the group, for reading partitions up to their end.

    Used on assignment (the changelog; the result partition since a point in time,
    to find results already published) and before re-sending a result. Reads are
    serialised: one consumer, one read at a time.
    """

    def __init__(
        self, bootstrap_servers: str, *, security: Mapping[str, Any] | None = None
    ) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            **(security or {}),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            fetch_max_wait_ms=50,
        )
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()

    async def changelog(
        self, topic: str, partitions: Iterable[int]
    ) -> dict[int, RestoredPartition]:
        """Every given changelog partition, read whole."""
        async with self._lock:
            return await read_changelog(self._consumer, topic, partitions)

    async def keys_since(self, topic: str, partition: int, since_ms: int) -> set[str]:
        """The keys of records written to ``topic[partition]`` at or after ``since_ms``."""
        tp = TopicPartition(topic, partition)
        async with self._lock:
            self._consumer.assign([tp])
            found = await self._consumer.offsets_for_times({tp: max(since_ms, 0)})
            if found.get(tp) is None:
                return set()
            start = {tp: found[tp].offset}
            return {
                key.decode(errors="replace")
                async for _, key, _ in read_to_end(self._consumer, [tp], start=start)
                if key is not None
            }

    async def timestamp_at(self, topic: str, partition: int, offset: int) -> int | None:
        """The timestamp of the record at ``offset`` (or the next one), None past the end."""
        tp = TopicPartition(topic, partition)
        async with self._lock:
            self._consumer.assign([tp])
            end = (await self._consumer.end_offsets([tp]))[tp]
            if offset >= end:
                return None
            self._consumer.seek(tp, offset)
            while True:
                batch = await self._consumer.getmany(tp, timeout_ms=500, max_records=1)
                for record in batch.get(tp, []):
                    return int(record.timestamp)
