"""How the worker's records reach Kafka: backoff, and the value-less dead letter."""

from __future__ import annotations

import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    TopicAuthorizationFailedError,
)

from handlers.worker_delivery import (
    MAX_KEY_BYTES,
    MAX_REASON_CHARS,
    dead_letter_headers,
    is_permanent,
    send_with_backoff,
    value_less_dead_letter,
)


async def test_transient_errors_are_retried_with_a_growing_pause() -> None:
    pauses: list[float] = []
    attempts = 0

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    async def send() -> None:
        nonlocal attempts
        attempts += 1
        if attempts <= 8:
            raise KafkaConnectionError("gone")

    await send_with_backoff(send, what="a reply", closing=lambda: False, sleep=sleep)

    assert attempts == 9
    assert pauses == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]


async def test_a_permanent_error_is_raised_at_once() -> None:
    async def send() -> None:
        raise MessageSizeTooLargeError()

    async def sleep(seconds: float) -> None:
        raise AssertionError("no pause for a permanent error")

    with pytest.raises(MessageSizeTooLargeError):
        await send_with_backoff(send, what="a reply", closing=lambda: False, sleep=sleep)


async def test_a_stopping_worker_gives_up_on_a_transient_error() -> None:
    async def send() -> None:
        raise KafkaConnectionError("gone")

    with pytest.raises(KafkaConnectionError):
        await send_with_backoff(send, what="a reply", closing=lambda: True)


def test_which_errors_are_permanent() -> None:
    assert not is_permanent(KafkaConnectionError())
    assert not is_permanent(KafkaTimeoutError())
    assert not is_permanent(OSError())
    assert is_permanent(MessageSizeTooLargeError())
    assert is_permanent(TopicAuthorizationFailedError())
    assert is_permanent(AssertionError("Unrecognized partition"))


def test_the_value_less_dead_letter_keeps_only_the_workers_own_headers() -> None:
    dlq = dead_letter_headers(
        code="command.invalid", reason="x" * 10_000, topic="cmds", partition=0, offset=7
    )
    key, headers = value_less_dead_letter(
        b"k" * 5_000, b"v" * 900_000, {"dlq_padding": "p" * 900_000, "origin": "o"}, dlq
    )

    assert len(dlq["dlq_reason"]) == MAX_REASON_CHARS
    assert len(key) == MAX_KEY_BYTES
    assert set(headers) == {*dlq, "dlq_dropped"}
    assert "900000 bytes" in headers["dlq_dropped"]
