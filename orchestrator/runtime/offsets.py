"""Which offset of a partition is safe to commit.

An offset may be committed only when every record before it is finished: a
request is finished when its result is published (or it went to the dead-letter
topic), so a crash never loses a request whose result was not yet sent. Records
finish out of order; the committable offset is the first unfinished one.
"""

from __future__ import annotations

from collections import deque


class PartitionOffsets:
    """Tracks the records of one partition from fetch to finish."""

    def __init__(self) -> None:
        self._order: deque[int] = deque()
        self._pending: set[int] = set()
        self._next: int | None = None
        self._committed: int | None = None

    def track(self, offset: int) -> None:
        """A record was fetched and is now in progress."""
        if offset in self._pending:
            return
        self._order.append(offset)
        self._pending.add(offset)
        self._next = offset + 1 if self._next is None else max(self._next, offset + 1)

    def finish(self, offset: int) -> None:
        """A record's work is done (result or dead letter published).

        An offset that is not in progress (finished already, or never tracked
        here) is ignored, so it can never move the committable offset.
        """
        if offset not in self._pending:
            return
        self._pending.discard(offset)
        while self._order and self._order[0] not in self._pending:
            self._order.popleft()

    @property
    def in_progress(self) -> int:
        """Records fetched and not finished."""
        return len(self._pending)

    def committable(self) -> int | None:
        """The offset to commit now, or None if it has not moved since the last commit."""
        if self._next is None:
            return None
        position = self._order[0] if self._order else self._next
        return None if position == self._committed else position

    def committed(self, offset: int) -> None:
        """Record that ``offset`` was committed."""
        self._committed = offset
