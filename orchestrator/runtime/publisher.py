"""Publish records until Kafka acknowledges them, and say what was held up.

A record whose offset waits on it (a result, a dead letter) must either be
acknowledged or replaced: a transient error (``retriable`` in aiokafka's error
tree) is retried with backoff for as long as the coordinator runs, which keeps
the request's offset uncommitted, as it should be; a permanent one (too large,
rejected) switches to the fallback records, e.g. a small failed result that says
why, so the request still gets exactly one answer and the partition moves on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaProducer

from orchestrator.runtime.records import OutgoingRecord

logger = logging.getLogger(__name__)

_FIRST_BACKOFF_S = 0.1
_MAX_BACKOFF_S = 5.0


Fallback = Callable[[], list[OutgoingRecord]]
"""Builds the records to publish instead, only when they are needed."""


def is_retriable(error: BaseException) -> bool:
    """Whether retrying the same records may succeed."""
    return bool(getattr(error, "retriable", False))


class Publisher:
    """The one producer of a coordinator, with the retry policy above."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer

    async def send(self, records: list[OutgoingRecord]) -> None:
        """Send ``records`` and wait until every one is acknowledged."""
        deliveries = [
            await self._producer.send(
                record.topic,
                value=record.value,
                key=record.key,
                headers=record.headers,
            )
            for record in records
        ]
        await asyncio.gather(*deliveries)

    async def send_until_acknowledged(
        self,
        records: list[OutgoingRecord],
        *,
        fallback: Fallback | None,
        what: str,
    ) -> None:
        """Send ``records``; retry transient errors, use ``fallback()`` on a permanent one.

        Raises:
            Exception: the permanent error, when there is no fallback (or it failed too).
        """
        backoff = _FIRST_BACKOFF_S
        while True:
            try:
                await self.send(records)
                return
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if is_retriable(error):
                    logger.warning(
                        "publishing %s failed (%s); retrying in %.1f s", what, error, backoff
                    )
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, _MAX_BACKOFF_S)
                    continue
                if fallback is None:
                    logger.error("publishing %s failed for good: %r", what, error)
                    raise
                logger.error(
                    "publishing %s failed for good (%r); publishing its fallback", what, error
                )
                records, fallback = fallback(), None
