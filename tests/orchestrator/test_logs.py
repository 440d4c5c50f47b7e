"""Log output: JSON lines, and aiokafka's transient errors held back until they persist."""

from __future__ import annotations

import logging
import sys

import orjson
import pytest

from orchestrator.logs import JsonFormatter, TransientKafkaFilter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(
    message: str,
    *args: object,
    level: int = logging.ERROR,
    name: str = "aiokafka.consumer.group_coordinator",
) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, args, None)


COORDINATOR = "Group Coordinator Request failed: %s"
NOT_AVAILABLE = "[Error 15] GroupCoordinatorNotAvailableError"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def kafka_filter(clock: FakeClock) -> TransientKafkaFilter:
    logging.getLogger("aiokafka").setLevel(logging.NOTSET)
    return TransientKafkaFilter(persist_s=30, quiet_s=30, clock=clock)


@pytest.mark.parametrize(
    ("message", "args"),
    [
        (COORDINATOR, (NOT_AVAILABLE,)),
        ("Failed fetch offsets from %s: %s", (1, "[Error 6] NotLeaderForPartitionError")),
        ("Marking the coordinator dead (node %s)for group %s.", (1, "g")),
        ("Topic %s is not available during auto-create initialization", ("t",)),
        ("Heartbeat failed for group %s because it is rebalancing", ("g",)),
    ],
)
def test_a_known_transient_message_is_downgraded_to_debug(
    kafka_filter: TransientKafkaFilter, message: str, args: tuple[object, ...]
) -> None:
    transient = record(message, *args)

    shown = kafka_filter.filter(transient)

    assert (shown, transient.levelno, transient.levelname) == (False, logging.DEBUG, "DEBUG")


def test_a_downgraded_message_shows_at_debug_when_debug_is_on(
    kafka_filter: TransientKafkaFilter,
) -> None:
    logging.getLogger("aiokafka").setLevel(logging.DEBUG)
    try:
        transient = record(COORDINATOR, NOT_AVAILABLE)
        assert kafka_filter.filter(transient) is True
        assert transient.levelno == logging.DEBUG
    finally:
        logging.getLogger("aiokafka").setLevel(logging.NOTSET)


def test_a_message_that_persists_goes_through_at_its_own_level(
    kafka_filter: TransientKafkaFilter, clock: FakeClock
) -> None:
    for _ in range(6):  # every 5 s for 25 s: still transient
        assert kafka_filter.filter(record(COORDINATOR, NOT_AVAILABLE)) is False
        clock.now += 5
    clock.now += 5  # 30 s since the first
    outage = record(COORDINATOR, NOT_AVAILABLE)

    assert kafka_filter.filter(outage) is True
    assert outage.levelno == logging.ERROR


def test_after_a_quiet_spell_the_message_is_transient_again(
    kafka_filter: TransientKafkaFilter, clock: FakeClock
) -> None:
    kafka_filter.filter(record(COORDINATOR, NOT_AVAILABLE))
    clock.now += 31
    kafka_filter.filter(record(COORDINATOR, NOT_AVAILABLE))  # 31 s later, a new streak
    clock.now += 31

    assert kafka_filter.filter(record(COORDINATOR, NOT_AVAILABLE)) is False


@pytest.mark.parametrize(
    ("message", "args", "name"),
    [
        ("Unexpected error in %s routine", ("coordinator",), "aiokafka"),
        ("OffsetCommit failed for group %s - %s", ("g", "GroupAuthorizationFailedError"), None),
        (COORDINATOR, (NOT_AVAILABLE,), "orchestrator.runtime"),
    ],
)
def test_other_messages_keep_their_level(
    kafka_filter: TransientKafkaFilter, message: str, args: tuple[object, ...], name: str | None
) -> None:
    kept = record(message, *args, name=name or "aiokafka.consumer.group_coordinator")

    assert kafka_filter.filter(kept) is True
    assert kept.levelno == logging.ERROR


def test_json_lines_carry_time_level_logger_message_and_exception() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        failed = logging.LogRecord(
            "orchestrator.x", logging.ERROR, __file__, 1, "saga %s failed", ("s-1",), sys.exc_info()
        )

    line = JsonFormatter().format(failed)

    entry = orjson.loads(line)
    assert "\n" not in line
    assert (entry["level"], entry["logger"], entry["message"]) == (
        "ERROR",
        "orchestrator.x",
        "saga s-1 failed",
    )
    assert entry["time"].endswith("+00:00")
    assert "RuntimeError: boom" in entry["exception"]
