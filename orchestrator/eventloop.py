"""Which event loop the long-running commands use.

``ORCH_EVENT_LOOP=uvloop`` (the default; uvloop is a dependency on every platform
but Windows) or ``asyncio``. uvloop's loop and transports are written in C over
libuv: measured with the benchmark, the coordinator spends less CPU per request
on it (figures in ``bench/README.md``). Where uvloop is not installed, the
standard loop is used.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from orchestrator.settings import EVENT_LOOPS, CoordinatorSettings

T = TypeVar("T")

LOOPS = EVENT_LOOPS


def loop_name() -> str:
    """The loop ``run`` will use, from ``ORCH_EVENT_LOOP`` and what is installed.

    Raises:
        SetupError: The variable names no loop (the setting ``event_loop`` checks it).
    """
    wanted = CoordinatorSettings.from_env().event_loop
    if wanted == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            return "asyncio"
    return wanted


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on the chosen loop."""
    if loop_name() == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)
