"""An inter-process lock, so two commands never fetch or start the same broker."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` for the ``with`` block.

    The lock goes away with the process, so a crashed holder never leaves a
    stale lock behind, unlike a lock file that must be deleted.

    Args:
        path: Lock file; created, with its folder, if missing.

    Yields:
        Nothing; the lock is held while the block runs.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
