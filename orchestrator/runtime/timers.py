"""One heap of deadlines for every call in flight, retry backoff and flow deadline
(no task or sleep per saga)."""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

TimerKind = Literal["call", "retry", "saga_deadline"]
"""``call``: an attempt's deadline; ``retry``: a backoff is over; ``saga_deadline``:
the flow's deadline."""


@dataclass(order=True, slots=True)
class Deadline:
    """A timer; ordered by time, then by arrival."""

    at_ms: int
    sequence: int
    request_id: str = field(compare=False)
    call: str = field(compare=False)
    attempt: int = field(compare=False)
    run: int = field(compare=False, default=0)
    kind: TimerKind = field(compare=False, default="call")


class DeadlineHeap:
    """Deadlines ordered by time.

    Entries are not removed one by one: a deadline that fires after its call was
    answered is ignored by the saga core, which is cheaper than cancelling. Timers
    of sagas that are gone are dropped in bulk by :meth:`prune`.
    """

    def __init__(self) -> None:
        self._heap: list[Deadline] = []
        self._sequence = 0

    def __len__(self) -> int:
        return len(self._heap)

    def push(
        self,
        *,
        at_ms: int,
        request_id: str,
        call: str,
        attempt: int,
        run: int = 0,
        kind: TimerKind = "call",
    ) -> bool:
        """Add a timer; returns True if it is now the earliest one."""
        self._sequence += 1
        entry = Deadline(at_ms, self._sequence, request_id, call, attempt, run, kind)
        heapq.heappush(self._heap, entry)
        return self._heap[0] is entry

    def next_at_ms(self) -> int | None:
        """When the earliest deadline falls, or None if there is none."""
        return self._heap[0].at_ms if self._heap else None

    def prune(self, keep: Callable[[Deadline], bool]) -> int:
        """Drop every timer ``keep`` rejects; returns how many were dropped."""
        before = len(self._heap)
        self._heap = [entry for entry in self._heap if keep(entry)]
        heapq.heapify(self._heap)
        return before - len(self._heap)

    def pop_due(self, now_ms: int) -> list[Deadline]:
        """Remove and return every deadline at or before ``now_ms``."""
        due = []
        while self._heap and self._heap[0].at_ms <= now_ms:
            due.append(heapq.heappop(self._heap))
        return due
