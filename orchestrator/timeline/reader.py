"""Feed the timeline from Kafka: the result topic and the saga changelog.

One consumer per ingress process, outside any consumer group (it assigns itself
every partition of both topics and commits nothing). On start it seeks each
partition to the first record at or after ``now - timeline_window_ms``
(``offsets_for_times``), then follows both topics live. Topics that do not exist
yet (an ingress started before the first coordinator) are looked for again every
second, so the page fills once they appear.

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

from orchestrator.settings import CoordinatorSettings
from orchestrator.timeline.store import TimelineStore

logger = logging.getLogger(__name__)

RETRY_ASSIGN_S = 1.0
_CHUNKED = b"#chunks:"
"""A changelog value split into parts (over 512 KiB): the timeline skips it."""


class TimelineReader:
    """Reads results and changelog records into a :class:`TimelineStore`."""

    def __init__(self, settings: CoordinatorSettings, store: TimelineStore) -> None:
        self.settings = settings
        self.store = store
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            # Results may be written in a transaction (the opt-in mode): show only
            # those that were committed.
            isolation_level="read_committed",
            fetch_max_wait_ms=200,
        )
        self._task: asyncio.Task[None] | None = None
        self._assigned: set[TopicPartition] = set()

    async def start(self) -> None:
        """Connect and start following; returns at once (reading goes on in a task)."""
        await self._consumer.start()
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
        while True:
            try:
                if len({tp.topic for tp in self._assigned}) < len(wanted):
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
        starts = await self._consumer.offsets_for_times(dict.fromkeys(new, max(0, since)))
        ends = await self._consumer.end_offsets(list(new))
        for tp in new:
            at = starts.get(tp)
            self._consumer.seek(tp, at.offset if at is not None else ends[tp])
        self._assigned |= new

    def _take(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        if value is None or key is None or value.startswith(_CHUNKED):
            return
        try:
            body: Any = orjson.loads(value)
        except orjson.JSONDecodeError:
            return
        if not isinstance(body, dict):
            return
        if topic == self.settings.result_topic:
            self.store.add_result(body)
            return
        kind, _, rest = key.decode(errors="replace").partition(":")
        if kind == "s" and "done" not in body and isinstance(body.get("started_ms"), int):
            self.store.add_start(rest, flow=body.get("flow"), started_ms=body["started_ms"])
        elif kind == "e":
            request_id, _, _number = rest.rpartition("/")
            self.store.add_event(request_id, body)
