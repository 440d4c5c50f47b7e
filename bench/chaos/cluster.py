"""The processes of a chaos run: the broker (restartable when the run started it),
the coordinators and the inventory adapter (child processes, ended by their own pid).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from orchestrator import localkafka
from orchestrator.localkafka import BrokerInfo, BrokerSettings

Say = Callable[[str], None]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STOP_TIMEOUT_S = 20.0


def orchestrator_command() -> list[str]:
    """The ``orchestrator`` command of this virtualenv."""
    script = Path(sys.executable).with_name("orchestrator")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "orchestrator.cli"]


class Broker:
    """The run's broker: its own, on a runtime folder of its own, or an external one.

    Its own broker is restarted on the same port and data folder (``stop`` then
    ``start`` with the settings ``start`` returned: concrete ports, same folder, so
    the formatted storage and every topic are kept).
    """

    def __init__(self, *, external: str | None, runtime_dir: Path, say: Say) -> None:
        self.external = external
        self._settings = BrokerSettings(port=0, runtime_dir=runtime_dir)
        self._info: BrokerInfo | None = None
        self._say = say

    @property
    def restartable(self) -> bool:
        """Whether this run started the broker (an external one is not touched)."""
        return self.external is None

    @property
    def bootstrap(self) -> str:
        """The broker's bootstrap servers."""
        if self.external is not None:
            return self.external
        assert self._info is not None, "start the broker first"
        return self._info.bootstrap

    @property
    def pid(self) -> int | None:
        """The pid of the broker this run started, else None."""
        return None if self._info is None else self._info.pid

    def start(self) -> None:
        """Start the broker (a no-op for an external one)."""
        if self.external is None:
            settings = self._settings if self._info is None else self._info.settings
            self._info = localkafka.start(settings, progress=self._say)

    def stop(self) -> None:
        """Stop the broker this run started (SIGTERM to its pid, then SIGKILL)."""
        if self._info is not None:
            localkafka.stop(self._info.settings, progress=self._say)

    def restart(self) -> float:
        """Stop and start the broker on the same port and data; returns seconds down."""
        started = time.monotonic()
        self.stop()
        self.start()
        return time.monotonic() - started


class Child:
    """One child process (a coordinator or the adapter) with its output in a log file."""

    def __init__(self, name: str, argv: Sequence[str], *, env: Mapping[str, str], log: Path):
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log = log
        self.starts = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The running process's pid, else None."""
        return self._process.pid if self.alive and self._process else None

    @property
    def alive(self) -> bool:
        """Whether the process runs."""
        return self._process is not None and self._process.poll() is None

    @property
    def exit_code(self) -> int | None:
        """The exit code of the process last started, if it exited."""
        return None if self._process is None else self._process.poll()

    def start(self) -> int:
        """Start the process (its output appended to the log); returns its pid."""
        assert not self.alive, f"{self.name} runs already"
        self.starts += 1
        with self.log.open("ab") as log:
            log.write(f"=== start {self.starts} of {self.name} at {time.ctime()}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=PROJECT_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self._process.pid

    def kill(self) -> int | None:
        """SIGKILL the process by its pid and reap it; returns the pid killed."""
        process = self._process
        if process is None or process.poll() is not None:
            return None
        process.send_signal(signal.SIGKILL)
        process.wait()
        return process.pid

    def stop(self) -> None:
        """SIGTERM the process, SIGKILL it if it has not exited after 20 s, reap it."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                process.wait()

    def started_marker_count(self, marker: str) -> int:
        """How many times ``marker`` appears in the log (e.g. a 'running' line)."""
        try:
            return self.log.read_text(errors="replace").count(marker)
        except OSError:
            return 0

    def tail(self, lines: int = 15) -> str:
        """The last lines of the log."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def base_env(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment, the project on PYTHONPATH, plus ``extra``."""
    env = dict(os.environ)
    paths = [str(PROJECT_ROOT), *filter(None, [env.get("PYTHONPATH")])]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra)
    return env
