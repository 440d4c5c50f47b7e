"""The coordinator's view of its partitions: offsets in progress, commits, pausing."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from orchestrator.runtime.offsets import PartitionOffsets

logger = logging.getLogger(__name__)

COMMIT_TIMEOUT_S = 5.0


class PartitionBook:
    """Offsets in progress per partition, and the commits and pauses they drive."""

    def __init__(self, *, request_topic: str) -> None:
        self._request_topic = request_topic
        self._offsets: dict[TopicPartition, PartitionOffsets] = {}
        self._paused = False

    def track(self, partition: TopicPartition, offset: int) -> PartitionOffsets:
        """A record was fetched: return its partition's tracker, now tracking it."""
        offsets = self._offsets.get(partition)
        if offsets is None:
            offsets = self._offsets[partition] = PartitionOffsets()
        offsets.track(offset)
        return offsets

    def forget(self, revoked: set[TopicPartition]) -> None:
        """Partitions went to another instance (or will be re-fetched): start afresh."""
        for partition in revoked:
            self._offsets.pop(partition, None)
        self._paused = False  # a new assignment starts unpaused

    async def commit(self, consumer: AIOKafkaConsumer) -> None:
        """Commit every partition's committable offset; bounded, never raises.

        aiokafka retries a commit for as long as the group coordinator is unknown;
        bounding it means an unreachable broker cannot hang a poll or a stop.
        """
        try:
            await asyncio.wait_for(self._commit(consumer), timeout=COMMIT_TIMEOUT_S)
        except (TimeoutError, KafkaError) as error:
            logger.warning("offset commit failed (%r); will retry", error)

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        assignment = consumer.assignment()
        due = {}
        for partition, offsets in self._offsets.items():
            position = offsets.committable()
            if position is not None and partition in assignment:
                due[partition] = (offsets, position)
        if due:
            await consumer.commit({partition: position for partition, (_, position) in due.items()})
            for offsets, position in due.values():
                offsets.committed(position)

    def apply_backpressure(self, consumer: AIOKafkaConsumer, *, busy: bool, idle: bool) -> None:
        """Stop fetching requests while ``busy``, resume once ``idle``; replies always flow."""
        if not self._paused and busy:
            consumer.pause(*self._request_partitions(consumer))
            self._paused = True
            logger.info("at the in-flight limit: new requests wait in Kafka")
        elif self._paused and idle:
            consumer.resume(*self._request_partitions(consumer))
            self._paused = False

    def _request_partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        return [
            partition
            for partition in consumer.assignment()
            if partition.topic == self._request_topic
        ]
