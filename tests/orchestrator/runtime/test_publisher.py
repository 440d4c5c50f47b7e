"""The publisher's retry policy, with a scripted producer: what is transient, what is not,
which records are sent again, and when ``landed`` stops a resend."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aiokafka import errors as kafka

from orchestrator.runtime import publisher as publisher_module
from orchestrator.runtime.publisher import PERMANENT_ERRORS, Publisher, is_retriable
from orchestrator.runtime.records import OutgoingRecord

TRANSIENT = [
    kafka.KafkaTimeoutError(),  # aiokafka: retriable = False; the bug of issue 6
    kafka.RequestTimedOutError(),
    kafka.KafkaConnectionError("broken"),
    kafka.NodeNotReadyError(),
    kafka.NoBrokersAvailable(),
    kafka.NotLeaderForPartitionError(),
    kafka.LeaderNotAvailableError(),
    kafka.UnknownTopicOrPartitionError(),
    kafka.NotEnoughReplicasError(),
    kafka.NotEnoughReplicasAfterAppendError(),
    kafka.KafkaStorageError(),
    kafka.BrokerNotAvailableError(),
    kafka.UnknownError(),
    kafka.OutOfOrderSequenceNumber(),
    kafka.ProducerFenced(),
    kafka.ProducerClosed(),
    kafka.KafkaError("unexpected error during batch delivery"),
    ConnectionResetError(),
    TimeoutError(),
    OSError("network unreachable"),
]

PERMANENT = [
    kafka.MessageSizeTooLargeError("The message is 1100000 bytes when serialized"),
    kafka.RecordListTooLargeError(),
    kafka.RecordTooLargeError(),
    kafka.CorruptRecordException(),
    kafka.InvalidTimestampError(),
    kafka.InvalidRequestError(),
    kafka.UnsupportedForMessageFormatError(),
    kafka.UnsupportedVersionError(),
    kafka.InvalidRequiredAcksError(),
    kafka.InvalidTopicError(),
    kafka.TopicAuthorizationFailedError("orch.results"),
    kafka.ClusterAuthorizationFailedError(),
    kafka.TransactionalIdAuthorizationFailed("tx"),
    orjson.JSONEncodeError("Type is not JSON serializable: set"),
    TypeError("value must be bytes"),
    ValueError("bad record"),
    UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
    AssertionError("Need at least one: key or value"),
    RuntimeError("a bug"),
]


@pytest.mark.parametrize("error", TRANSIENT, ids=lambda error: type(error).__name__)
def test_transient_errors_are_retried(error: BaseException) -> None:
    assert is_retriable(error)


@pytest.mark.parametrize("error", PERMANENT, ids=lambda error: type(error).__name__)
def test_permanent_errors_are_not_retried(error: BaseException) -> None:
    assert not is_retriable(error)


def test_every_named_permanent_error_is_permanent() -> None:
    for error_type in PERMANENT_ERRORS:
        assert not is_retriable(error_type.__new__(error_type)), error_type


def record(name: str) -> OutgoingRecord:
    return OutgoingRecord(topic="orch.results", key=name.encode(), value=name.encode(), headers=[])


class ScriptedProducer:
    """``send()`` takes each record and settles its delivery as scripted, by record key.

    A script entry is ``"ok"``, ``("refuse", error)`` (``send()`` raises: the record
    was never taken) or ``("fail", error)`` (taken, then the delivery fails).
    """

    def __init__(self, script: dict[str, list[Any]]) -> None:
        self.script = script
        self.taken: list[str] = []

    async def send(self, topic: str, **fields: Any) -> asyncio.Future[None]:
        name = fields["key"].decode()
        step = self.script[name].pop(0) if self.script.get(name) else "ok"
        if isinstance(step, tuple) and step[0] == "refuse":
            raise step[1]
        self.taken.append(name)
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if isinstance(step, tuple):
            delivery.set_exception(step[1])
        else:
            delivery.set_result(None)
        return delivery


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(publisher_module, "_FIRST_BACKOFF_S", 0.001)


class Landed:
    def __init__(self, answer: bool | Exception) -> None:
        self.answer = answer
        self.asked = 0

    async def __call__(self) -> bool:
        self.asked += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


async def test_landed_true_prevents_the_resend() -> None:
    producer = ScriptedProducer({"a": [("fail", kafka.NotLeaderForPartitionError())]})
    landed = Landed(True)

    await Publisher(producer).send_until_acknowledged(  # type: ignore[arg-type]
        [record("a")], fallback=None, what="the result of a", landed=landed
    )

    assert producer.taken == ["a"], "not sent a second time"
    assert landed.asked == 1


async def test_landed_false_resends() -> None:
    producer = ScriptedProducer({"a": [("fail", kafka.NotLeaderForPartitionError())]})
    landed = Landed(False)

    await Publisher(producer).send_until_acknowledged(  # type: ignore[arg-type]
        [record("a")], fallback=None, what="the result of a", landed=landed
    )

    assert producer.taken == ["a", "a"]
    assert landed.asked == 1


async def test_without_landed_a_transient_failure_is_resent() -> None:
    producer = ScriptedProducer(
        {"a": [("fail", kafka.RequestTimedOutError()), ("fail", kafka.KafkaConnectionError())]}
    )

    await Publisher(producer).send_until_acknowledged(  # type: ignore[arg-type]
        [record("a")], fallback=None, what="the result of a"
    )

    assert producer.taken == ["a", "a", "a"]


async def test_landed_that_cannot_answer_means_resend() -> None:
    producer = ScriptedProducer({"a": [("fail", kafka.NotLeaderForPartitionError())]})

    await Publisher(producer).send_until_acknowledged(  # type: ignore[arg-type]
        [record("a")], fallback=None, what="the result of a", landed=Landed(OSError("down"))
    )

    assert producer.taken == ["a", "a"]


async def test_a_record_the_producer_never_took_is_resent_without_asking_landed() -> None:
    # KafkaTimeoutError from send(): the buffer did not drain; nothing was written.
    producer = ScriptedProducer({"a": [("refuse", kafka.KafkaTimeoutError())]})
    landed = Landed(True)

    await Publisher(producer).send_until_acknowledged(  # type: ignore[arg-type]
        [record("a")], fallback=None, what="the result of a", landed=landed
    )

    assert producer.taken == ["a"]
    assert landed.asked == 0


async def test_only_unacknowledged_records_are_sent_again() -> None:
    # A burst: the buffer is full at "b"; "a" was taken and acknowledged.
    producer = ScriptedProducer({"b": [("refuse", kafka.KafkaTimeoutError())]})

    await Publisher(producer).send_until_acknowledged(  # type: ignore[arg-type]
        [record("a"), record("b"), record("c")], fallback=None, what="three records"
    )

    assert producer.taken == ["a", "b", "c"]


async def test_a_permanent_error_publishes_the_fallback_minus_what_was_acknowledged() -> None:
    producer = ScriptedProducer({"big": [("fail", kafka.MessageSizeTooLargeError())]})

    await Publisher(producer).send_until_acknowledged(  # type: ignore[arg-type]
        [record("big"), record("answer")],
        fallback=lambda: [record("small"), record("answer")],
        what="a dead letter and its answer",
    )

    assert producer.taken == ["big", "answer", "small"]


async def test_a_permanent_error_without_fallback_is_raised() -> None:
    producer = ScriptedProducer({"a": [("refuse", kafka.MessageSizeTooLargeError())]})

    with pytest.raises(kafka.MessageSizeTooLargeError):
        await Publisher(producer).send_until_acknowledged(  # type: ignore[arg-type]
            [record("a")], fallback=None, what="the result of a", landed=Landed(True)
        )


async def test_send_waits_for_what_was_taken_and_raises_the_permanent_error() -> None:
    producer = ScriptedProducer(
        {
            "a": [("fail", kafka.NotLeaderForPartitionError())],
            "b": [("fail", kafka.MessageSizeTooLargeError())],
        }
    )

    with pytest.raises(kafka.MessageSizeTooLargeError):
        await Publisher(producer).send([record("a"), record("b")])  # type: ignore[arg-type]

    assert producer.taken == ["a", "b"]
