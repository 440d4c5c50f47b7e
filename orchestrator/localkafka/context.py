"""Scoped use of the local broker, and the switch to an externally run one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from .config import BrokerSettings
from .models import BrokerInfo
from .process import start, stop
from .progress import Progress, to_stderr

BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"


def bootstrap_from_env() -> str | None:
    """Return ``$KAFKA_BOOTSTRAP_SERVERS`` if set and not blank.

    When it is set, callers use that broker and start none of their own.

    Returns:
        The bootstrap servers, or None.
    """
    value = os.environ.get(BOOTSTRAP_ENV, "").strip()
    return value or None


@contextmanager
def running_broker(
    settings: BrokerSettings | None = None, *, progress: Progress = to_stderr
) -> Iterator[BrokerInfo]:
    """Run the block with a ready broker, starting one if none runs.

    On exit the broker is stopped only if this context started it, so a broker
    someone brought up beforehand keeps running.

    Args:
        settings: Broker settings; defaults to ``BrokerSettings()``.
        progress: Receives human-readable progress lines.

    Yields:
        The ready broker.
    """
    info = start(settings, progress=progress)
    try:
        yield info
    finally:
        if info.started:
            stop(info.settings, progress=progress)
