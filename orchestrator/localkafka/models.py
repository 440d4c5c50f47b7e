"""What the broker manager reports about a broker it started or found."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .config import BrokerSettings


@dataclass(frozen=True, slots=True)
class BrokerInfo:
    """A broker that answered a client, as returned by ``start``.

    Attributes:
        bootstrap: Address clients connect to, ``127.0.0.1:<port>``.
        pid: The broker's process id.
        log_path: The broker's ``server.log``.
        runtime_dir: Folder holding the broker's data, configs and logs.
        settings: The settings with concrete ports: pass them to ``stop`` and
            ``status`` when ``start`` was asked for free ports (``port=0``).
        started: True if this call started the process, False if it reused one
            that was already running.
    """

    bootstrap: str
    pid: int
    log_path: Path
    runtime_dir: Path
    settings: BrokerSettings
    started: bool


@dataclass(frozen=True, slots=True)
class BrokerStatus:
    """Whether the broker of some settings runs.

    ``running`` only says the recorded process is alive; it does not probe
    whether it answers clients yet.

    Attributes:
        running: True if the recorded broker process is alive.
        pid: Its process id when running, else None.
        bootstrap: Address clients connect to, ``127.0.0.1:<port>``.
        log_path: The broker's ``server.log``.
        runtime_dir: Folder holding the broker's data, configs and logs.
    """

    running: bool
    pid: int | None
    bootstrap: str
    log_path: Path
    runtime_dir: Path
