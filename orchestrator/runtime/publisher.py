"""Publish records until Kafka acknowledges them, and say what was held up.

A record whose offset waits on it (a result, a dead letter) must either be
acknowledged or replaced: a transient error is retried with backoff for as long
as the coordinator runs, which keeps the request's offset uncommitted, as it
should be; a permanent one switches to the fallback records, e.g. a small failed
result that says why, so the request still gets exactly one answer and the
partition moves on.

Permanent errors (:data:`PERMANENT_ERRORS`): sending the same records again
cannot succeed.

- ``MessageSizeTooLargeError``: the record is over the producer's
  ``max_request_size`` (raised by ``send()``) or the topic's ``max.message.bytes``
  (the broker's answer); ``RecordListTooLargeError``; ``RecordTooLargeError``.
- ``CorruptRecordException``, ``InvalidTimestampError``, ``InvalidRequestError``,
  ``UnsupportedForMessageFormatError``, ``UnsupportedVersionError``,
  ``InvalidRequiredAcksError``: the broker refuses this request as built.
- ``InvalidTopicError``, ``TopicAuthorizationFailedError``,
  ``ClusterAuthorizationFailedError``, ``TransactionalIdAuthorizationFailed``.
- ``TypeError``, ``ValueError`` (``orjson.JSONEncodeError``, ``UnicodeEncodeError``):
  the record cannot be built; likewise any other exception that is neither a
  ``KafkaError`` nor an ``OSError`` (a bug, aiokafka's argument asserts).

Every other ``KafkaError`` is transient, whatever its ``retriable`` flag says:
``KafkaTimeoutError`` (which aiokafka marks as not retriable, yet only means the
producer's buffer did not drain in time), connection errors, leader changes,
missing metadata, ``OSError``. So are the errors that leave this producer broken
for a partition (``OutOfOrderSequenceNumber``, ``ProducerFenced``,
``UnknownProducerId``): retrying on the same producer keeps failing, which keeps the
offset uncommitted until a new producer takes over; a fallback would not help.

When aiokafka retries by itself, and when an error reaches us (aiokafka 0.14,
``enable_idempotence=True`` as the coordinator runs it):

- ``send()`` appends the record to its partition's open batch and returns a
  delivery future. The sender task sends one produce request per broker at a
  time. A batch whose request fails with a retriable error (connection lost,
  ``RequestTimedOutError`` after ``request_timeout_ms`` with no answer, even if the
  broker wrote it; ``NotLeaderForPartitionError``, ``NotEnoughReplicasError``...)
  goes back to the head of its partition's queue after ``retry_backoff_ms`` and is
  sent again as the same batch: same producer id, epoch and base sequence, fixed
  when it was first drained. The broker recognises a copy it already wrote, so this
  internal retry never duplicates, and with idempotence it has no time limit.
  (Without idempotence it stops once the batch is older than ``request_timeout_ms``,
  counted from the batch's creation, and each retry may write a second copy.)
- An error raised by ``await send()`` means the record was never handed to the
  producer, so nothing was written and resending is safe: ``KafkaTimeoutError``
  (the partition's full batch was not drained within ``request_timeout_ms``: what a
  burst causes), ``UnknownTopicOrPartitionError`` or
  ``TopicAuthorizationFailedError`` (no metadata within ``request_timeout_ms``),
  ``MessageSizeTooLargeError`` (over ``max_request_size``), ``ProducerClosed``.
- An error set on the delivery future means the broker refused the batch (a
  non-retriable code: not written) or aiokafka gave up on it: a batch still
  waiting for a partition leader past ``request_timeout_ms`` fails with
  ``NotLeaderForPartitionError`` or ``LeaderNotAvailableError`` even with
  idempotence, and a crash of the sender task fails every pending batch. An earlier
  attempt of such a batch may have been written, and our resend is a new batch
  with new sequence numbers, which the broker cannot recognise as a copy.

Hence :meth:`Publisher.send_until_acknowledged` resends only the records that were
not acknowledged, and, when one of them failed after being handed to the producer,
first asks ``landed`` (if given) whether the records are in Kafka already.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    CorruptRecordException,
    InvalidRequestError,
    InvalidRequiredAcksError,
    InvalidTimestampError,
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
    UnsupportedForMessageFormatError,
    UnsupportedVersionError,
)

from orchestrator.runtime.records import OutgoingRecord

logger = logging.getLogger(__name__)

_FIRST_BACKOFF_S = 0.1
_MAX_BACKOFF_S = 5.0

PERMANENT_ERRORS: tuple[type[Exception], ...] = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    CorruptRecordException,
    InvalidTimestampError,
    InvalidRequestError,
    UnsupportedForMessageFormatError,
    UnsupportedVersionError,
    InvalidRequiredAcksError,
    InvalidTopicError,
    TopicAuthorizationFailedError,
    ClusterAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
    TypeError,
    ValueError,
)
"""Errors after which sending the same records again cannot succeed."""

Fallback = Callable[[], list[OutgoingRecord]]
"""Builds the records to publish instead, only when they are needed."""

Landed = Callable[[], Awaitable[bool]]
"""Says whether the records are in Kafka already (an earlier attempt was written)."""


def is_retriable(error: BaseException) -> bool:
    """Whether sending the same records again may succeed (see the module docstring)."""
    if isinstance(error, PERMANENT_ERRORS):
        return False
    return isinstance(error, (KafkaError, OSError))


@dataclass(frozen=True, slots=True)
class _Attempt:
    acknowledged: list[OutgoingRecord]
    unacknowledged: list[OutgoingRecord]
    error: Exception | None
    """A permanent error if there was one, else the first error."""
    in_doubt: bool
    """A record failed after it was handed to the producer: it may have been written."""


class Publisher:
    """The one producer of a coordinator, with the retry policy above."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer

    async def send(self, records: list[OutgoingRecord]) -> None:
        """Send ``records`` and wait until every one is acknowledged.

        Raises:
            Exception: the first error (a permanent one first), once every record
                handed to the producer is acknowledged or has failed.
        """
        attempt = await self._attempt(records)
        if attempt.error is not None:
            raise attempt.error

    async def send_until_acknowledged(
        self,
        records: list[OutgoingRecord],
        *,
        fallback: Fallback | None,
        what: str,
        landed: Landed | None = None,
    ) -> None:
        """Send ``records``; retry transient errors, use ``fallback()`` on a permanent one.

        Only the records not acknowledged yet are sent again. Before sending again
        after a transient error, if a record may have been written (it failed after
        the producer took it) and ``landed`` is given, ``await landed()``: True
        means the records are in Kafka already, and this returns without resending.
        After a switch to the fallback, ``landed`` is asked only about the fallback's
        attempts (so it should recognise either set of records). The fallback's
        records that were acknowledged already are not sent again.

        Raises:
            Exception: the permanent error, when there is no fallback (or it failed too).
        """
        backoff = _FIRST_BACKOFF_S
        acknowledged: list[OutgoingRecord] = []
        in_doubt = False
        while True:
            attempt = await self._attempt(records)
            if attempt.error is None:
                return
            acknowledged += attempt.acknowledged
            records = attempt.unacknowledged
            error = attempt.error
            if is_retriable(error):
                in_doubt = in_doubt or attempt.in_doubt
                logger.warning(
                    "publishing %s failed (%s); retrying in %.1f s", what, error, backoff
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
                if in_doubt and landed is not None and await _has_landed(landed, what):
                    logger.info("%s was written by an earlier attempt; not resending it", what)
                    return
                continue
            if fallback is None:
                logger.error("publishing %s failed for good: %r", what, error)
                raise error
            logger.error("publishing %s failed for good (%r); publishing its fallback", what, error)
            records = [record for record in fallback() if record not in acknowledged]
            fallback, in_doubt = None, False

    async def _attempt(self, records: list[OutgoingRecord]) -> _Attempt:
        """Hand ``records`` to the producer in order; wait for what it took to settle."""
        deliveries: list[Any] = []
        refused: Exception | None = None
        for record in records:
            try:
                deliveries.append(
                    await self._producer.send(
                        record.topic,
                        value=record.value,
                        key=record.key,
                        headers=record.headers,
                        partition=record.partition,
                    )
                )
            except Exception as error:
                # Not taken, so not written; the records after it are not sent either.
                refused = error
                break
        outcomes = await asyncio.gather(*deliveries, return_exceptions=True)
        errors: list[Exception] = []
        acknowledged: list[OutgoingRecord] = []
        unacknowledged: list[OutgoingRecord] = []
        for record, outcome in zip(records, outcomes, strict=False):
            if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
                raise outcome  # a delivery cancelled by the producer's shutdown
            if isinstance(outcome, Exception):
                errors.append(outcome)
                unacknowledged.append(record)
            else:
                acknowledged.append(record)
        in_doubt = any(is_retriable(error) for error in errors)  # refused ones were not written
        if refused is not None:
            errors.append(refused)
            unacknowledged += records[len(deliveries) :]
        permanent = [error for error in errors if not is_retriable(error)]
        first = permanent[0] if permanent else errors[0] if errors else None
        return _Attempt(acknowledged, unacknowledged, error=first, in_doubt=in_doubt)


async def _has_landed(landed: Landed, what: str) -> bool:
    try:
        return await landed()
    except asyncio.CancelledError:
        raise
    except Exception:
        # Not knowing, send again: a possible second copy beats a missing record.
        logger.exception("could not check whether %s was written; sending it again", what)
        return False
