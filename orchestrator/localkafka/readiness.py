"""Decide that a broker is ready the only reliable way: a real client gets an answer."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

from aiokafka.admin import (  # type: ignore[import-untyped, unused-ignore]
    AIOKafkaAdminClient,
)
from aiokafka.errors import KafkaError  # type: ignore[import-untyped, unused-ignore]

from .config import HOST

_T = TypeVar("_T")
_RETRY_S = 0.25
_PROBE_TIMEOUT_S = 5.0

Readiness = Literal["ready", "exited", "timeout"]


def wait_until_ready(port: int, *, timeout: float, alive: Callable[[], bool]) -> Readiness:
    """Probe the broker until it answers, its process exits, or time runs out.

    Args:
        port: The broker's client port.
        timeout: Seconds to keep trying.
        alive: Tells whether the broker process still runs.

    Returns:
        ``"ready"``, ``"exited"`` or ``"timeout"``.
    """
    deadline = time.monotonic() + timeout
    while True:
        if not alive():
            return "exited"
        left = deadline - time.monotonic()
        if left <= 0:
            return "timeout"
        if answers(port, timeout=min(_PROBE_TIMEOUT_S, left)):
            return "ready"
        time.sleep(_RETRY_S)


def answers(port: int, *, timeout: float = _PROBE_TIMEOUT_S) -> bool:
    """Tell whether a Kafka broker on ``127.0.0.1:port`` answers a metadata request.

    Callable from synchronous code and from inside a running event loop alike.

    Args:
        port: The broker's client port.
        timeout: Seconds allowed for the whole probe.

    Returns:
        True if an admin client connected and listed the topics.
    """
    return _in_fresh_loop(lambda: _answers(port, timeout))


async def _answers(port: int, within_s: float) -> bool:
    # A bare TCP connect fails fast while the broker is still booting; the
    # admin client would otherwise log a connection error on every retry.
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), within_s)
    except (OSError, TimeoutError):
        return False
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        return False
    admin = AIOKafkaAdminClient(
        bootstrap_servers=f"{HOST}:{port}", request_timeout_ms=int(within_s * 1000)
    )
    try:
        async with asyncio.timeout(within_s):
            await admin.start()
            await admin.list_topics()
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        await admin.close()
    return True


def _in_fresh_loop(make: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine to completion on a new event loop in a worker thread.

    The thread keeps this usable from code already inside an event loop (where
    ``asyncio.run`` refuses to nest), such as an async test fixture. It is a
    daemon so that Ctrl-C in the caller is not held up by a probe in flight.
    """
    results: list[_T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(asyncio.run(make()))
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=run, name="kafka-readiness-probe", daemon=True)
    worker.start()
    worker.join()
    if errors:
        raise errors[0]
    return results[0]
