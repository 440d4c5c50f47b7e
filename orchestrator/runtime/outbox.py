"""Where answers leave: results and dead letters, each finishing its record's offset.

The outbox is what makes "one result per request, never zero, never two" hold
across the time a result is on its way:

- a request id counts as answered from the moment its result is handed over
  (``publishing``) until long after it was acknowledged (``finished``, a bounded
  memory of the most recent ids);
- the record that caused an answer is finished (its offset may be committed) only
  once Kafka has acknowledged the answer;
- a duplicate that arrives while the answer is on its way finishes when it does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Coroutine
from typing import Any

from orchestrator.runtime.offsets import PartitionOffsets
from orchestrator.runtime.publisher import Fallback, Publisher
from orchestrator.runtime.records import OutgoingRecord

logger = logging.getLogger(__name__)


class Outbox:
    """Publishes answers and remembers which request ids have one."""

    def __init__(self, *, finished_memory: int) -> None:
        self.publisher: Publisher | None = None
        """Set once the producer runs."""
        self._finished_memory = finished_memory
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._results: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def answered(self, request_id: str) -> bool:
        """Whether a result for ``request_id`` is on its way or was acknowledged."""
        return request_id in self._results or request_id in self._finished

    def send_result(
        self,
        request_id: str,
        records: list[OutgoingRecord],
        *,
        fallback: Fallback | None,
        offsets: PartitionOffsets,
        offset: int,
        what: str,
    ) -> None:
        """Publish the one result of ``request_id``, then finish its request record."""
        self._results[request_id] = self._spawn(
            self._send(
                records,
                request_id=request_id,
                fallback=fallback,
                offsets=offsets,
                offset=offset,
                what=what,
            )
        )

    def send_dead_letter(
        self,
        records: list[OutgoingRecord],
        *,
        answers: str | None,
        offsets: PartitionOffsets,
        offset: int,
        what: str,
    ) -> None:
        """Publish a dead letter (and a failed result for ``answers``, if given)."""
        task = self._spawn(
            self._send(
                records,
                request_id=answers,
                fallback=None,
                offsets=offsets,
                offset=offset,
                what=what,
            )
        )
        if answers is not None:
            self._results[answers] = task

    def finish_duplicate(self, request_id: str, *, offsets: PartitionOffsets, offset: int) -> None:
        """Finish a duplicate's record once the original's answer is acknowledged."""
        sending = self._results.get(request_id)
        if sending is None:
            offsets.finish(offset)
            return
        self._spawn(self._finish_after(sending, offsets, offset))

    async def drain(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for answers on their way."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout_s)

    async def aclose(self) -> None:
        """Abandon what is still on its way (its records stay unfinished)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _send(
        self,
        records: list[OutgoingRecord],
        *,
        request_id: str | None,
        fallback: Fallback | None,
        offsets: PartitionOffsets,
        offset: int,
        what: str,
    ) -> None:
        # The offset becomes committable only once Kafka has acknowledged the
        # records (acks=all): this is what makes the outcome at-least-once.
        assert self.publisher is not None
        try:
            await self.publisher.send_until_acknowledged(records, fallback=fallback, what=what)
        except Exception:
            logger.error("%s was not published: its offset stays uncommitted", what)
            raise
        finally:
            if request_id is not None:
                self._results.pop(request_id, None)
        if request_id is not None:
            self._remember(request_id)
        offsets.finish(offset)

    @staticmethod
    async def _finish_after(
        sending: asyncio.Task[None], offsets: PartitionOffsets, offset: int
    ) -> None:
        with contextlib.suppress(Exception):
            await asyncio.shield(sending)
        if not sending.cancelled() and sending.exception() is None:
            offsets.finish(offset)

    def _remember(self, request_id: str) -> None:
        self._finished[request_id] = None
        if len(self._finished) > self._finished_memory:
            self._finished.popitem(last=False)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("publishing an answer failed", exc_info=task.exception())
