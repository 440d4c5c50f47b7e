"""What every benchmarked system provides.

A system composes the same "order details" (see :mod:`bench.mock_service`) from the
mock service at ``mock_url``. The load generator (in the bench process) calls
:meth:`System.run_one` as often and as concurrently as a phase asks; what the system
spends is read from the processes :meth:`System.pids` names (CPU time and peak RSS
from ``/proc``), so the load generator's own cost is not counted for systems that
run outside it.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path
from typing import Any, Protocol

from orchestrator.localkafka.config import default_cache_dir


def cache_dir(name: str) -> Path:
    """A folder kept between runs for a peer's installs and builds."""
    path = default_cache_dir() / "bench" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


STOP_TIMEOUT_S = 15.0
LOG_TAIL_LINES = 15


def tail_log(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log file ("" if it cannot be read)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


async def terminate(
    process: subprocess.Popen[bytes] | None, *, timeout_s: float = STOP_TIMEOUT_S
) -> None:
    """SIGTERM the process by its pid, SIGKILL it if it lingers, and reap it."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.to_thread(process.wait, timeout_s)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(process.wait)


class SystemUnavailable(Exception):
    """A system's toolchain is missing or it could not be set up; the run skips it."""


class System(Protocol):
    """One system under test."""

    name: str
    """Short stable name used in tables, JSON and charts (``restate``, ``temporal``...)."""

    async def start(self) -> None:
        """Install what is missing (print progress), start processes, warm up.

        Raises:
            SystemUnavailable: with one sentence saying what is missing.
        """
        ...

    async def run_one(self, number: int) -> dict[str, Any]:
        """Compose the order ``o-<number>``; returns the composed result."""
        ...

    def pids(self) -> list[int]:
        """The processes doing this system's work (not the load generator, not the mock)."""
        ...

    def versions(self) -> dict[str, str]:
        """Versions of what the system runs on (server, SDK), for the result file."""
        ...

    async def stop(self) -> None:
        """Stop every process this system started, by its pid."""
        ...
