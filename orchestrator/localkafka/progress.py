"""How the broker manager reports what it is doing to a person waiting for it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

#: Receives one human-readable line per step (fetching, starting, ready, ...).
Progress = Callable[[str], None]


def to_stderr(line: str) -> None:
    """Print a progress line to stderr, leaving stdout to the command's output.

    Args:
        line: The line to print.
    """
    print(line, file=sys.stderr, flush=True)


def tail(path: Path, lines: int = 20) -> str:
    """Return the last ``lines`` lines of a text file, or a note if it is missing.

    Args:
        path: File to read.
        lines: How many lines to keep.

    Returns:
        The lines joined by newlines.
    """
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"({path} does not exist)"
    kept = text.splitlines()[-lines:]
    return "\n".join(kept) if kept else f"({path} is empty)"
