"""How the ``orchestrator`` commands log: text or JSON lines, without start-up alarms.

On fresh topics, and for a moment after a broker restart or a leader change,
aiokafka logs ERROR lines such as ``Group Coordinator Request failed: [Error 15]
GroupCoordinatorNotAvailableError`` or ``Failed fetch offsets from 1: [Error 6]
NotLeaderForPartitionError`` and then retries and succeeds. They alarm users for
nothing, so :class:`TransientKafkaFilter` logs those known-transient messages at
DEBUG while they are transient; when one keeps coming for longer than
``persist_s`` it goes through at its own level, so a real outage still shows.

A streak of one message ends only after ``quiet_s`` (5 minutes) without it, so an
error that repeats every minute, or every few minutes, for good is one streak and
shows once it is ``persist_s`` old; it is not mistaken for a new transient each
time. The downgrade is made on a copy of the record, in our handler only
(:class:`TransientAwareHandler`): other handlers see the record as aiokafka made it.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

import orjson

#: Parts of aiokafka messages (their text or the error they name) that a cluster
#: getting ready, or a group or leader moving, produces and that retries resolve.
TRANSIENT_MARKERS = (
    "GroupCoordinatorNotAvailable",
    "NotCoordinatorForGroup",
    "NotCoordinator",
    "CoordinatorLoadInProgress",
    "NotLeaderForPartition",
    "LeaderNotAvailable",
    "UnknownTopicOrPartition",
    "Marking the coordinator dead",
    "not available during auto-create",
    "not found in cluster metadata",
    # A group that rebalances (a member joins or leaves, e.g. `run --processes N`).
    "RebalanceInProgress",
    "because it is rebalancing",
    # A broker that restarts; one that cannot be reached at start is said by the
    # command in one sentence, so the line would only repeat it.
    "Unable connect to",
)
PERSIST_S = 30.0
"""How long one transient message may keep coming before it is let through."""
QUIET_S = 300.0
"""A message not seen for this long ends its streak (the next one is transient again).
Much longer than ``PERSIST_S``: a persistent error that repeats less often than
every ``PERSIST_S`` must still count as one streak, and show."""


class TransientKafkaFilter:
    """Decides which of aiokafka's known-transient errors are shown at DEBUG.

    Streaks are kept per message (its format string), on the monotonic clock: a
    message whose streak began ``persist_s`` ago or longer keeps its level; a
    streak ends after ``quiet_s`` without the message. It changes no record:
    :class:`TransientAwareHandler` logs a downgraded copy.
    """

    def __init__(
        self,
        *,
        persist_s: float = PERSIST_S,
        quiet_s: float = QUIET_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._persist_s = persist_s
        self._quiet_s = quiet_s
        self._clock = clock
        self._streaks: dict[tuple[str, str], tuple[float, float]] = {}
        """(logger, format string) -> (first seen, last seen) of the current streak."""

    def downgrade(self, record: logging.LogRecord) -> bool:
        """Whether ``record`` is a known-transient aiokafka error to show at DEBUG
        (and count it in its message's streak)."""
        if not record.name.startswith("aiokafka") or record.levelno <= logging.DEBUG:
            return False
        message = record.getMessage()
        if not any(marker in message for marker in TRANSIENT_MARKERS):
            return False
        now = self._clock()
        key = (record.name, str(record.msg))
        first, last = self._streaks.get(key, (now, now))
        if now - last > self._quiet_s:
            first = now
        self._streaks[key] = (first, now)
        return now - first < self._persist_s


class TransientAwareHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Logs to stderr; aiokafka's transient errors (see :class:`TransientKafkaFilter`)
    as a DEBUG copy, emitted only if their logger is enabled for DEBUG."""

    def __init__(self, transient: TransientKafkaFilter | None = None) -> None:
        super().__init__()
        self.transient = TransientKafkaFilter() if transient is None else transient

    def handle(self, record: logging.LogRecord) -> bool:
        if self.transient.downgrade(record):
            if not logging.getLogger(record.name).isEnabledFor(logging.DEBUG):
                return False
            record = copy.copy(record)  # other handlers keep the original level
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return bool(super().handle(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, and
    ``exception`` (the traceback text) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry).decode()


def configure_logging(*, level: str, log_format: str) -> None:
    """Log to stderr at ``level`` as ``text`` or ``json`` lines, with aiokafka's
    transient errors held back (see :class:`TransientKafkaFilter`)."""
    handler = TransientAwareHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler])
