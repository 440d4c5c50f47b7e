"""Log output: JSON lines, and aiokafka's transient errors held back until they persist."""

from __future__ import annotations

import logging
import sys

import orjson
import pytest

from orchestrator.logs import JsonFormatter, TransientAwareHandler, TransientKafkaFilter


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
    return TransientKafkaFilter(persist_s=30, quiet_s=300, clock=clock)


class Kept(logging.Handler):
    """Keeps the records it is given, as they are."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.levelname, record.getMessage()))


@pytest.fixture
def handler(kafka_filter: TransientKafkaFilter) -> tuple[TransientAwareHandler, Kept]:
    ours = TransientAwareHandler(kafka_filter)
    kept = Kept()
    ours.emit = kept.emit  # type: ignore[method-assign]
    return ours, kept


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
    handler: tuple[TransientAwareHandler, Kept], message: str, args: tuple[object, ...]
) -> None:
    ours, kept = handler
    transient = record(message, *args)

    assert ours.handle(transient) is False
    assert kept.records == []
    assert transient.levelno == logging.ERROR  # the record itself is left alone


def test_a_downgraded_message_shows_at_debug_when_debug_is_on(
    handler: tuple[TransientAwareHandler, Kept],
) -> None:
    ours, kept = handler
    logging.getLogger("aiokafka").setLevel(logging.DEBUG)
    try:
        transient = record(COORDINATOR, NOT_AVAILABLE)
        assert ours.handle(transient) is True
        assert kept.records == [("DEBUG", f"Group Coordinator Request failed: {NOT_AVAILABLE}")]
        assert (transient.levelno, transient.levelname) == (logging.ERROR, "ERROR")
    finally:
        logging.getLogger("aiokafka").setLevel(logging.NOTSET)


def test_other_handlers_see_the_record_at_its_own_level(
    handler: tuple[TransientAwareHandler, Kept],
) -> None:
    ours, kept = handler
    other = Kept()
    logger = logging.getLogger("aiokafka.test_other_handlers")
    logger.propagate = False
    logger.addHandler(ours)
    logger.addHandler(other)
    try:
        logger.error(COORDINATOR, NOT_AVAILABLE)
    finally:
        logger.removeHandler(ours)
        logger.removeHandler(other)
    assert kept.records == []
    assert other.records == [("ERROR", f"Group Coordinator Request failed: {NOT_AVAILABLE}")]


def test_a_message_that_persists_goes_through_at_its_own_level(
    kafka_filter: TransientKafkaFilter, clock: FakeClock
) -> None:
    for _ in range(6):  # every 5 s for 25 s: still transient
        assert kafka_filter.downgrade(record(COORDINATOR, NOT_AVAILABLE)) is True
        clock.now += 5
    clock.now += 5  # 30 s since the first

    assert kafka_filter.downgrade(record(COORDINATOR, NOT_AVAILABLE)) is False


def test_an_error_repeating_less_often_than_the_persist_time_still_shows(
    kafka_filter: TransientKafkaFilter, clock: FakeClock
) -> None:
    # Once a minute for good: one streak (the gaps are shorter than quiet_s), so
    # the second sighting is already past persist_s and shows.
    assert kafka_filter.downgrade(record(COORDINATOR, NOT_AVAILABLE)) is True
    for _ in range(5):
        clock.now += 60
        assert kafka_filter.downgrade(record(COORDINATOR, NOT_AVAILABLE)) is False


def test_after_a_quiet_spell_the_message_is_transient_again(
    kafka_filter: TransientKafkaFilter, clock: FakeClock
) -> None:
    kafka_filter.downgrade(record(COORDINATOR, NOT_AVAILABLE))
    clock.now += 60
    assert kafka_filter.downgrade(record(COORDINATOR, NOT_AVAILABLE)) is False  # persisted
    clock.now += 301  # five minutes of silence end the streak

    assert kafka_filter.downgrade(record(COORDINATOR, NOT_AVAILABLE)) is True


@pytest.mark.parametrize(
    ("message", "args", "name"),
    [
        ("Unexpected error in %s routine", ("coordinator",), "aiokafka"),
        ("OffsetCommit failed for group %s - %s", ("g", "GroupAuthorizationFailedError"), None),
        (COORDINATOR, (NOT_AVAILABLE,), "orchestrator.runtime"),
    ],
)
def test_other_messages_keep_their_level(
    handler: tuple[TransientAwareHandler, Kept],
    message: str,
    args: tuple[object, ...],
    name: str | None,
) -> None:
    ours, kept = handler
    kept_record = record(message, *args, name=name or "aiokafka.consumer.group_coordinator")

    assert ours.handle(kept_record) is True
    assert [level for level, _ in kept.records] == ["ERROR"]


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
