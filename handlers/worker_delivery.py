"""How an SDK worker's records reach Kafka: retries with backoff, and small fallbacks.

A reply or dead letter that fails for a transient reason (connection lost, leader
moving, a timeout) is sent again after a growing pause (0.1 s doubling to 5 s), for
as long as the worker runs: the command is not run again, and its offset stays
uncommitted until the record is written. Until this existed, a failed reply nacked
the command, which came back at once and ran again, in a tight loop.

A permanent failure is not retried (:func:`is_too_large`, :func:`is_permanent`);
the caller sends a smaller record instead. :func:`value_less_dead_letter` is the
dead letter of last resort: the worker's own ``dlq_*`` headers (reason cut to
:data:`MAX_REASON_CHARS`), no value, and a key cut to :data:`MAX_KEY_BYTES`, so a
command of the broker's maximum size still leaves a trace instead of being lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka.errors import (
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)

logger = logging.getLogger(__name__)

FIRST_BACKOFF_S = 0.1
MAX_BACKOFF_S = 5.0
MAX_REASON_CHARS = 2_000
"""The longest ``dlq_reason`` the worker writes, the cut marker included."""
MAX_KEY_BYTES = 1_024
"""A value-less dead letter keeps at most this much of the key."""

Sleep = Callable[[float], Awaitable[None]]

_pause: Sleep = asyncio.sleep
"""How a retry waits (looked up at each wait, so a test can record the pauses)."""


def is_too_large(error: BaseException) -> bool:
    """Whether Kafka refused the record for its size (sending it again cannot help)."""
    return isinstance(
        error, MessageSizeTooLargeError | RecordListTooLargeError | RecordTooLargeError
    )


def is_permanent(error: BaseException) -> bool:
    """Whether sending the same record again cannot succeed.

    Transient: every ``KafkaError`` aiokafka marks retriable, a timeout, an
    ``OSError``. Everything else (size, authorization, an unknown partition, which
    aiokafka reports with an ``AssertionError``, a value that cannot be built) is
    permanent.
    """
    if is_too_large(error):
        return True
    if isinstance(error, KafkaError):
        return not (error.retriable or type(error).__name__ == "KafkaTimeoutError")
    return not isinstance(error, OSError)


async def send_with_backoff(
    send: Callable[[], Awaitable[None]],
    *,
    what: str,
    closing: Callable[[], bool],
    sleep: Sleep | None = None,
) -> None:
    """``await send()`` until it succeeds; transient errors wait and try again.

    Raises:
        Exception: a permanent error at once, or the last transient one once
            ``closing()`` is true (the command is then re-delivered, not lost).
    """
    backoff = FIRST_BACKOFF_S
    while True:
        try:
            await send()
            return
        except Exception as error:
            if is_permanent(error) or closing():
                raise
            logger.warning("publishing %s failed (%r); retrying in %.1f s", what, error, backoff)
        await (_pause if sleep is None else sleep)(backoff)
        backoff = min(backoff * 2, MAX_BACKOFF_S)


def cap_reason(reason: str) -> str:
    """``reason`` cut to :data:`MAX_REASON_CHARS`, saying it was cut."""
    if len(reason) <= MAX_REASON_CHARS:
        return reason
    marker = f"... [cut: the reason had {len(reason)} characters]"
    return reason[: MAX_REASON_CHARS - len(marker)] + marker


def dead_letter_headers(
    *, code: str, reason: str, topic: str, partition: int, offset: int
) -> dict[str, str]:
    """The ``dlq_*`` headers the worker adds to a command it dead-letters."""
    return {
        "dlq_code": code,
        "dlq_reason": cap_reason(reason),
        "dlq_topic": topic,
        "dlq_partition": str(partition),
        "dlq_offset": str(offset),
    }


def value_less_dead_letter(
    key: bytes | None, value: bytes, headers: dict[str, str], dlq: dict[str, str]
) -> tuple[bytes, dict[str, str]]:
    """The key and headers of the small dead letter sent when the full one is too large.

    Only the worker's own ``dlq_*`` headers are kept (a command's own headers, even
    ones named ``dlq_*``, may be what made it large), plus ``dlq_dropped``.
    """
    dropped = (
        f"the original value of {len(value)} bytes and its {len(headers)} headers "
        "were too large to keep"
    )
    if key is not None and len(key) > MAX_KEY_BYTES:
        dropped += f"; its key of {len(key)} bytes was cut to {MAX_KEY_BYTES}"
        key = key[:MAX_KEY_BYTES]
    return key or b"", {**dlq, "dlq_dropped": dropped}
