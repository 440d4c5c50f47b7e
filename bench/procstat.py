"""CPU time and memory of a set of processes, read from ``/proc`` (Linux)."""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU seconds the processes have used so far (gone ones count 0)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICKS


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def rss_bytes(pids: list[int]) -> int:
    """Resident memory of the processes now, added up."""
    return sum(_status_kb(pid, "VmRSS:") for pid in pids) * 1024


def peak_rss_bytes(pids: list[int]) -> int:
    """The processes' peak resident memory (VmHWM), added up."""
    return sum(_status_kb(pid, "VmHWM:") for pid in pids) * 1024


def children(pid: int) -> list[int]:
    """Direct children of ``pid``."""
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            found.extend(int(child) for child in text)
    except (FileNotFoundError, ProcessLookupError):
        pass
    return found
