"""How the ``orchestrator`` commands log: text or JSON lines, without start-up alarms.

On fresh topics, and for a moment after a broker restart or a leader change,
aiokafka logs ERROR lines such as ``Group Coordinator Request failed: [Error 15]
GroupCoordinatorNotAvailableError`` or ``Failed fetch offsets from 1: [Error 6]
NotLeaderForPartitionError`` and then retries and succeeds. They alarm users for
nothing, so :class:`TransientKafkaFilter` logs those known-transient messages at
DEBUG while they are transient; when one keeps coming for longer than
``persist_s`` it goes through at its own level, so a real outage still shows.
"""

from __future__ import annotations

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
QUIET_S = 30.0
"""A message not seen for this long starts a new streak (transient again)."""


class TransientKafkaFilter(logging.Filter):
    """Downgrades aiokafka's known-transient errors to DEBUG until they persist.

    A handler filter: a downgraded record is emitted only if its logger is enabled
    for DEBUG. Streaks are kept per message (its format string), on the monotonic
    clock: a message first seen ``persist_s`` ago or longer, and seen again since
    without a pause of ``quiet_s``, keeps its level.
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

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("aiokafka") or record.levelno <= logging.DEBUG:
            return True
        message = record.getMessage()
        if not any(marker in message for marker in TRANSIENT_MARKERS):
            return True
        now = self._clock()
        key = (record.name, str(record.msg))
        first, last = self._streaks.get(key, (now, now))
        if now - last > self._quiet_s:
            first = now
        self._streaks[key] = (first, now)
        if now - first >= self._persist_s:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


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
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(TransientKafkaFilter())
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler])
