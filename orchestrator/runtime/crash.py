"""Named crash points, so every dangerous window can be tested deterministically.

With ``ORCH_CRASH_AT=<point>`` the coordinator kills its own process (SIGKILL: no
cleanup, no flush, like a power cut) the first time it reaches that point. Tests
start a coordinator with one, let it die there, restart it without, and check that
nothing was lost or done twice. Never set it in production.

============================  =====================================================
point                         where
============================  =====================================================
``after-reply-before-log``    an answer was applied to its saga in memory; its
                              changelog record is not written and nothing it leads
                              to (calls, the result) has been done
``after-result-before-log``   a result is acknowledged by Kafka, the saga not yet
                              recorded as finished
``after-log-before-commit``   a request's start is recorded in the changelog, its
                              offset not yet committed
``mid-compensation``          the first compensation call of a saga was dispatched
============================  =====================================================
"""

from __future__ import annotations

import logging
import os
import signal

logger = logging.getLogger(__name__)

CRASH_POINTS = frozenset(
    {
        "after-reply-before-log",
        "after-result-before-log",
        "after-log-before-commit",
        "mid-compensation",
    }
)


def crash(point: str) -> None:
    """Kill this process now, as SIGKILL would."""
    logger.critical("crash point %s reached: killing the process", point)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os.kill(os.getpid(), signal.SIGKILL)
