"""Commands in flight in an SDK worker: a concurrency limit, and offsets committed in order.

The worker runs up to ``limit`` commands at once (a slow command no longer holds
up the ones behind it on its partition). Commands finish out of order, yet an
offset is committed only once every command before it on its partition is done
(replied to, or dead-lettered): a crash re-delivers whatever was not finished,
never skips it. The commit is the next offset after that done prefix, made by one
commit at a time, so commits of a partition never go backwards.

A record whose offset is already in flight (re-delivered by a rebalance while its
first copy still runs) is not run twice; a record at an offset below the ones
seen (the partition was re-assigned and read again from its commit) starts that
partition's book afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

logger = logging.getLogger(__name__)


class _PartitionBook:
    """Offsets of one partition from fetch to done."""

    __slots__ = ("committed", "next", "order", "pending")

    def __init__(self) -> None:
        self.order: deque[int] = deque()
        self.pending: set[int] = set()
        self.next: int | None = None
        self.committed: int | None = None

    def committable(self) -> int | None:
        if self.next is None:
            return None
        while self.order and self.order[0] not in self.pending:
            self.order.popleft()
        position = self.order[0] if self.order else self.next
        return None if position == self.committed else position


class CommandPool:
    """Runs commands as tasks, at most ``limit`` at once, and commits their offsets."""

    def __init__(self, limit: int) -> None:
        self._slots = asyncio.Semaphore(limit)
        self._tasks: set[asyncio.Task[None]] = set()
        self._books: dict[TopicPartition, _PartitionBook] = {}
        self._commit_lock = asyncio.Lock()
        self.closing = False
        """Set by a stop: records fetched from now on are not started (nor committed)."""

    @property
    def in_flight(self) -> int:
        """Commands running now."""
        return len(self._tasks)

    async def submit(
        self,
        work: Callable[[], Awaitable[None]],
        *,
        consumer: object,
        topic: str,
        partition: int,
        offset: int,
    ) -> None:
        """Start ``work`` once a slot is free (waiting here holds back the fetch loop).

        ``consumer``: the record's consumer; offsets are committed on it when it is
        an ``AIOKafkaConsumer`` (FastStream's in-memory test broker has none).
        """
        if self.closing:
            return  # not started, not committed: re-delivered to the next worker
        real = isinstance(consumer, AIOKafkaConsumer)
        tp = TopicPartition(topic, partition)
        if real and not self._track(tp, offset):
            return
        await self._slots.acquire()
        task = asyncio.create_task(self._run(work, consumer if real else None, tp, offset))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _track(self, tp: TopicPartition, offset: int) -> bool:
        """Book ``offset`` as in flight; False if it already is (do not run it twice)."""
        book = self._books.get(tp)
        if book is None or (
            book.next is not None and offset < book.next and offset not in book.pending
        ):
            # New, or read again from its commit after a re-assignment. The first
            # offset fetched is where the group stands: nothing to commit below it.
            book = self._books[tp] = _PartitionBook()
            book.committed = offset
        elif offset in book.pending:
            return False
        book.order.append(offset)
        book.pending.add(offset)
        book.next = offset + 1 if book.next is None else max(book.next, offset + 1)
        return True

    async def _run(
        self,
        work: Callable[[], Awaitable[None]],
        consumer: AIOKafkaConsumer | None,
        tp: TopicPartition,
        offset: int,
    ) -> None:
        try:
            await work()
        except Exception:
            # The work answers or dead-letters every command itself; this is a bug.
            logger.exception("a command at %s[%d]@%d failed", tp.topic, tp.partition, offset)
        finally:
            self._slots.release()
        book = self._books.get(tp)
        if consumer is None or book is None or offset not in book.pending:
            return
        book.pending.discard(offset)
        await self._commit(consumer, tp, book)

    async def _commit(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, book: _PartitionBook
    ) -> None:
        # One commit at a time, each of the latest done prefix: never backwards.
        async with self._commit_lock:
            position = book.committable()
            if position is None or self._books.get(tp) is not book:
                return
            try:
                await consumer.commit({tp: position})
            except Exception as error:
                # Revoked meanwhile (its next owner re-runs what is not committed),
                # or the group is rebalancing: the next done command commits again.
                logger.info(
                    "could not commit %s[%d]@%d: %r", tp.topic, tp.partition, position, error
                )
                return
            book.committed = position

    async def drain(self, grace_s: float) -> None:
        """Stop starting commands; wait ``grace_s`` for those running, then cancel them
        (not committed, they are re-delivered)."""
        self.closing = True
        if not self._tasks:
            return
        _, running = await asyncio.wait(set(self._tasks), timeout=grace_s)
        for task in running:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*running, return_exceptions=True)
