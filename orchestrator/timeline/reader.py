"""Feed the timeline from Kafka: the result topic and the saga changelog.

One consumer per ingress process, outside any consumer group (it assigns itself
every partition of both topics and commits nothing). On start it seeks each
partition to the first record at or after ``now - timeline_window_ms``
(``offsets_for_times``), then follows both topics live. Topics that do not exist
yet (an ingress started before the first coordinator) are looked for again every
second, so the page fills once they appear; partitions added to them later are
picked up within :data:`RECHECK_PARTITIONS_S`.

Of the changelog it decodes only saga start records and finished markers (the
``s:`` keys), and the recorded events of the sagas it shows running: flow
definitions, value parts and the events (reply outputs) of ended sagas are skipped
by their key, undecoded. A finished marker or a tombstone on an ``s:`` key ends the
saga's running entry.

It has its own consumer rather than sharing the ingress client's result reader:
that one starts at the end of the result topic (it only awaits new results), and
the timeline also reads the changelog from a point in the past.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from orchestrator.kafka_security import client_options
from orchestrator.settings import CoordinatorSettings
from orchestrator.timeline.store import TimelineStore

logger = logging.getLogger(__name__)

RETRY_ASSIGN_S = 1.0
RECHECK_PARTITIONS_S = 30.0
"""How often the reader looks for partitions added to its topics (one metadata request)."""
_CHUNKED = b"#chunks:"
"""A changelog value split into parts (over 512 KiB): the timeline skips it."""


class TimelineReader:
    """Reads results and changelog records into a :class:`TimelineStore`."""

    def __init__(self, settings: CoordinatorSettings, store: TimelineStore) -> None:
        self.settings = settings
        self.store = store
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            **client_options(settings),
            enable_auto_commit=False,
            auto_offset_reset="latest",
            # Results may be written in a transaction (the opt-in mode): show only
            # those that were committed.
            isolation_level="read_committed",
            fetch_max_wait_ms=200,
        )
        self._task: asyncio.Task[None] | None = None
        self._assigned: set[TopicPartition] = set()
        self.recheck_s = RECHECK_PARTITIONS_S

    async def start(self) -> None:
        """Connect and start following; returns at once (reading goes on in a task).

        If connecting fails the consumer is closed before the error is raised.
        """
        try:
            await self._consumer.start()
        except BaseException:
            with contextlib.suppress(Exception):  # the start's own error is the one to raise
                await self._consumer.stop()
            raise
        self._task = asyncio.create_task(self._follow(), name="timeline-reader")

    async def stop(self) -> None:
        """Stop following and close the consumer."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    async def _follow(self) -> None:
        wanted = (self.settings.result_topic, self.settings.changelog_topic)
        checked = time.monotonic()
        while True:
            try:
                missing = len({tp.topic for tp in self._assigned}) < len(wanted)
                if missing or time.monotonic() - checked >= self.recheck_s:
                    checked = time.monotonic()
                    await self._assign(wanted)
                if not self._assigned:
                    await asyncio.sleep(RETRY_ASSIGN_S)
                    continue
                batch = await self._consumer.getmany(timeout_ms=RETRY_ASSIGN_S * 1000)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The broker went away for a moment: the page keeps what it has.
                logger.warning("the timeline could not read from Kafka; retrying", exc_info=True)
                await asyncio.sleep(RETRY_ASSIGN_S)
                continue
            for tp, records in batch.items():
                for record in records:
                    self._take(tp.topic, record.key, record.value)

    async def _assign(self, topics: tuple[str, ...]) -> None:
        """Assign the partitions of every topic that exists, from the window's start."""
        # The whole cluster's metadata: the consumer's own covers assigned topics only.
        cluster = await self._consumer._client.fetch_all_metadata()
        found = set()
        for topic in topics:
            partitions = cluster.partitions_for_topic(topic)
            found |= {TopicPartition(topic, p) for p in partitions or ()}
        new = found - self._assigned
        if not new:
            return
        # assign() forgets positions: keep those of the partitions already followed.
        kept = {tp: await self._consumer.position(tp) for tp in self._assigned}
        self._consumer.assign(sorted(self._assigned | new))
        for tp, position in kept.items():
            self._consumer.seek(tp, position)
        since = int(time.time() * 1000) - max(0, self.settings.timeline_window_ms)
        # Ends first: a record written between the two look-ups is then found by its
        # time, where the other order would seek past it.
        ends = await self._consumer.end_offsets(list(new))
        starts = await self._consumer.offsets_for_times(dict.fromkeys(new, max(0, since)))
        for tp in new:
            at = starts.get(tp)
            self._consumer.seek(tp, at.offset if at is not None else ends[tp])
        self._assigned |= new

    def _take(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        if topic == self.settings.result_topic:
            body = _decoded(value)
            if body is not None:
                self.store.add_result(body)
            return
        if key.startswith(b"s:"):
            request_id = key[2:].decode(errors="replace")
            if value is None:
                self.store.end(request_id)  # the finished marker's tombstone
                return
            body = _decoded(value)
            if body is None:
                return
            if "done" in body:
                self.store.end(request_id)
            elif isinstance(body.get("started_ms"), int):
                self.store.add_start(
                    request_id, flow=body.get("flow"), started_ms=body["started_ms"]
                )
        elif key.startswith(b"e:"):
            request_id, _, _number = key[2:].decode(errors="replace").rpartition("/")
            if self.store.is_running(request_id):
                body = _decoded(value)
                if body is not None:
                    self.store.add_event(request_id, body)
        # "f:" flow definitions and "c:" value parts: nothing the timeline shows.


def _decoded(value: bytes | None) -> dict[str, Any] | None:
    """A record's JSON object; None for a tombstone, a split value or anything else."""
    if value is None or value.startswith(_CHUNKED):
        return None
    try:
        body: Any = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None
