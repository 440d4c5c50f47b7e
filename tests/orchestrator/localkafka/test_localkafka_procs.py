"""Recognising and ending the broker process by its recorded pid (no JVM needed)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from orchestrator.localkafka.procs import is_broker, is_running, spawn_detached, terminate


def _spawn_fake_broker(tmp_path: Path, *args: str) -> int:
    # `sh -c` takes the words after the script as $0, $1: they only shape the command line.
    return spawn_detached(["/bin/sh", "-c", "sleep 30", *args], log=tmp_path / "out.log")


def test_fresh_process_is_recognised_and_terminated(tmp_path: Path) -> None:
    properties = tmp_path / "server.properties"
    pid = _spawn_fake_broker(tmp_path, "kafka.Kafka", str(properties))

    # Checked at once: right after spawning, the command line is often still empty.
    assert is_broker(pid, properties)
    assert not is_broker(pid, tmp_path / "other.properties")

    assert terminate(pid, properties_file=properties, timeout=5)

    assert not is_running(pid)
    assert not Path(f"/proc/{pid}").exists(), "the exited child is reaped"


def test_terminate_never_signals_another_program(tmp_path: Path) -> None:
    pid = _spawn_fake_broker(tmp_path, "not-kafka")
    try:
        assert terminate(pid, properties_file=tmp_path / "server.properties", timeout=5)

        assert is_running(pid)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
