"""Where answers leave: results and dead letters, each retried until acknowledged.

- A request id counts as being answered from the moment its result is handed over
  until Kafka acknowledges it (then the coordinator records it as finished in the
  changelog, which recognises duplicates from then on).
- What waits on an answer (the saga's finished marker, a rejected record's offset)
  runs only once Kafka has acknowledged it (``then``).
- Before a result is sent again after a transient failure, the result partition
  is read back: if the first send landed after all, it is not sent twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from orchestrator.runtime.publisher import Fallback, Publisher
from orchestrator.runtime.records import OutgoingRecord

logger = logging.getLogger(__name__)

ResultLanded = Callable[[OutgoingRecord, int], Awaitable[bool]]
"""Whether ``record`` is already in its topic (written at or after the given epoch ms)."""


class Countdown:
    """Runs ``then`` after :meth:`done` was called ``count`` times."""

    __slots__ = ("_left", "_then")

    def __init__(self, count: int, then: Callable[[], None]) -> None:
        self._left = count
        self._then = then

    def done(self) -> None:
        self._left -= 1
        if self._left == 0:
            self._then()


class Outbox:
    """Publishes answers; knows which request ids are being answered."""

    def __init__(self, *, clock: Callable[[], int]) -> None:
        self.publisher: Publisher | None = None
        """Set once the producer runs."""
        self.landed: ResultLanded | None = None
        """Set once the coordinator can read topics back."""
        self._clock = clock
        self._answering: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def answering(self, request_id: str) -> bool:
        """Whether a result for ``request_id`` is on its way."""
        return request_id in self._answering

    @property
    def pending(self) -> int:
        """Answers on their way."""
        return len(self._tasks)

    def send(
        self,
        records: list[OutgoingRecord],
        *,
        answers: str | None,
        fallback: Fallback | None,
        what: str,
        then: Callable[[], None] | None = None,
    ) -> None:
        """Publish ``records`` (the result of ``answers``, if given), then run ``then``."""
        task = self._spawn(
            self._send(records, request_id=answers, fallback=fallback, what=what, then=then)
        )
        if answers is not None:
            self._answering[answers] = task

    async def drain(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for answers on their way."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)

    async def aclose(self) -> None:
        """Abandon what is still on its way (what waits on it does not run)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _send(
        self,
        records: list[OutgoingRecord],
        *,
        request_id: str | None,
        fallback: Fallback | None,
        what: str,
        then: Callable[[], None] | None,
    ) -> None:
        assert self.publisher is not None
        sent_ms = self._clock()
        landed = self.landed

        async def already_there() -> bool:
            # Only a result can be checked: it is the one record of its key.
            if landed is None or request_id is None:
                return False
            return await landed(records[0], sent_ms)

        try:
            await self.publisher.send_until_acknowledged(
                records, fallback=fallback, what=what, landed=already_there
            )
        except Exception:
            logger.error("%s was not published: what waits on it stays undone", what)
            raise
        finally:
            if request_id is not None and self._answering.get(request_id) is asyncio.current_task():
                del self._answering[request_id]
        if then is not None:
            then()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("publishing an answer failed", exc_info=task.exception())
