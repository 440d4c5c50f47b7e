"""The broker's OS process: spawn it detached, record its pid, find and end it.

A process is only ever ended by the pid this package recorded, and only after
``/proc/<pid>/cmdline`` shows it is the ``kafka.Kafka`` of this very runtime
folder, so a reused pid or another broker is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Literal

MAIN_CLASS = "kafka.Kafka"
_POLL_S = 0.1
_KILL_WAIT_S = 10.0
_CMDLINE_TRIES = 10
_CMDLINE_RETRY_S = 0.05


def spawn_detached(argv: list[str], *, log: Path) -> int:
    """Start ``argv`` in a new session with stdout and stderr going to ``log``.

    ``posix_spawn`` is used instead of ``subprocess.Popen`` because the broker
    outlives the handle on purpose: a dropped ``Popen`` of a running child warns
    (``ResourceWarning``), which a test run treating warnings as errors rejects.

    Args:
        argv: Program (absolute path) and arguments.
        log: File receiving the process's output; truncated first.

    Returns:
        The new process's pid.
    """
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        return os.posix_spawn(
            argv[0],
            argv,
            dict(os.environ),
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, out, 1),
                (os.POSIX_SPAWN_DUP2, out, 2),
            ],
            # A new session keeps Ctrl-C in the starting terminal away from the broker.
            setsid=True,
        )
    finally:
        os.close(out)


def read_pid(pid_file: Path) -> int | None:
    """Return the pid recorded in ``pid_file``, or None if absent or garbled."""
    try:
        return int(pid_file.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None


def write_pid(pid_file: Path, pid: int) -> None:
    """Record ``pid`` in ``pid_file``."""
    pid_file.write_text(f"{pid}\n", encoding="utf-8")


def is_broker(pid: int, properties_file: Path) -> bool:
    """Tell whether ``pid`` is a live ``kafka.Kafka`` run with ``properties_file``.

    Args:
        pid: Process id to inspect.
        properties_file: The ``server.properties`` the broker must have been given.

    Returns:
        True if the process runs and its command line matches.
    """
    for _ in range(_CMDLINE_TRIES):
        if not is_running(pid):
            return False
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        # The command line reads empty while the process is still inside exec
        # (posix_spawn returns before the new program's arguments are mapped,
        # most of the time in practice) and while it exits: look again.
        if args:
            parts = args.split(b"\0")
            return MAIN_CLASS.encode() in parts and os.fsencode(properties_file) in parts
        time.sleep(_CMDLINE_RETRY_S)
    return False


def is_running(pid: int) -> bool:
    """Tell whether ``pid`` exists and has not exited (reaping it if it is our child).

    Args:
        pid: Process id to inspect.

    Returns:
        False once the process has exited and, if it is our child, been reaped.
    """
    if _reap(pid) == "reaped":
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    # The state letter follows the parenthesised command name, which may hold spaces.
    if stat.rpartition(")")[2].split()[0] == "Z":
        # A zombie of someone else's is as good as gone. Our own child counts
        # until it is reaped: a JVM's main thread turns zombie while its other
        # threads are still exiting, before its ports are closed.
        return _reap(pid) == "running"
    return True


def terminate(pid: int, *, properties_file: Path, timeout: float) -> bool:
    """Send SIGTERM, wait up to ``timeout`` seconds, then SIGKILL.

    Args:
        pid: Broker pid (checked with :func:`is_broker` before every signal).
        properties_file: The broker's ``server.properties``.
        timeout: Seconds allowed for a clean shutdown.

    Returns:
        True if no broker of ours runs under ``pid`` any more, False if it
        survived SIGKILL.
    """
    for sig, wait_s in ((signal.SIGTERM, timeout), (signal.SIGKILL, _KILL_WAIT_S)):
        if not is_broker(pid, properties_file):
            # Gone, or the pid now belongs to another program: never signal it.
            return True
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if _wait_gone(pid, wait_s):
            return True
    return False


def _wait_gone(pid: int, wait_s: float) -> bool:
    """Wait up to ``wait_s`` seconds for ``pid`` to exit; tell whether it did."""
    deadline = time.monotonic() + wait_s
    while is_running(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_S)
    return True


def _reap(pid: int) -> Literal["reaped", "running", "not-our-child"]:
    """Collect ``pid``'s exit status if it is our exited child, so no zombie stays."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return "not-our-child"
    return "reaped" if done == pid else "running"
