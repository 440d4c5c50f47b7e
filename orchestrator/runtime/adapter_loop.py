"""An event loop in a thread of its own, for user code the coordinator runs in-process.

An SDK adapter loaded in-process (``kind: python``) is user code: an ``async def``
that may block (``time.sleep``, a synchronous client, a CPU-heavy loop). On the
coordinator's event loop one such call would stall every saga, and no timeout
could end it (a timeout needs the loop it would interrupt). So each in-process SDK
service runs on an :class:`AdapterLoop`: its own event loop in its own thread. The
coordinator awaits the call's future under the call's timeout; when the timeout
passes it answers ``adapter.timeout`` at once and cancels the call's task on the
adapter's loop (a task blocked in synchronous code ends when that code returns).

A blocking operation stalls only its own service's calls, which time out as they
would against a slow remote adapter. Python code that holds the GIL still shares
the CPU with the coordinator, but the interpreter switches threads every few
milliseconds, so other sagas keep moving.

Context variables (the trace context of the step span) travel with the call:
``run_coroutine_threadsafe`` copies the caller's context into the task it starts.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_JOIN_TIMEOUT_S = 5.0


class AdapterLoop:
    """An event loop on a daemon thread, started at the first call."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def _started(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=_run, args=(loop,), name=f"adapter-{self._name}", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    async def run(self, work: Coroutine[Any, Any, T], *, timeout_s: float) -> T:
        """Run ``work`` on this loop; raises ``TimeoutError`` after ``timeout_s``.

        On a timeout (or a cancellation of the caller) the task on the adapter's loop
        is cancelled; the caller does not wait for it to end.
        """
        future = asyncio.run_coroutine_threadsafe(work, self._started())
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout_s)
        finally:
            future.cancel()  # no-op when done; reaches the task across threads

    async def aclose(self) -> None:
        """Stop the loop: its tasks are cancelled; waits a few seconds for the thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        # A thread stuck in blocking user code is a daemon: it cannot hold up exit.
        await asyncio.to_thread(thread.join, _JOIN_TIMEOUT_S)


def _run(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
