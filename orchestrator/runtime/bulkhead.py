"""Bounded in-process calls per service, with the wait kept out of their timeouts.

Each HTTP service may have at most as many calls in flight as its connection pool has
connections (its own ``max_connections``, or the shared pool's size), or fewer if its
catalog entry sets ``max_concurrency``; an SDK service run in-process is bounded only
by its ``max_concurrency`` (see ``Routes.concurrency_limits``). A call over the bound
waits here, in order, *before* its timeout starts: waiting for a connection
inside the HTTP client would count against the call's timeout, and under a burst
(retries, a restored partition) every waiting call would time out together. The
dispatcher arms a waiting call's deadline only when it gets its slot.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Lane:
    limit: int
    busy: int = 0
    waiting: collections.deque[asyncio.Future[None]] = field(default_factory=collections.deque)


class Bulkheads:
    """Slots per service; services without a limit are not bounded here."""

    def __init__(self, limits: dict[str, int]) -> None:
        self._lanes = {service: _Lane(limit) for service, limit in limits.items() if limit > 0}

    def try_enter(self, service: str) -> bool:
        """Take a slot at once if one is free (or the service is not bounded)."""
        lane = self._lanes.get(service)
        if lane is None:
            return True
        if lane.busy < lane.limit and not lane.waiting:
            lane.busy += 1
            return True
        return False

    async def enter(self, service: str) -> None:
        """Wait for a slot, in order; a cancelled waiter leaves the line."""
        lane = self._lanes[service]
        if lane.busy < lane.limit and not lane.waiting:
            lane.busy += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        lane.waiting.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.leave(service)  # the slot was handed over as we were cancelled
            else:
                lane.waiting.remove(waiter)
            raise

    def leave(self, service: str) -> None:
        """Give the slot back, or straight to the next waiter."""
        lane = self._lanes.get(service)
        if lane is None:
            return
        while lane.waiting:
            waiter = lane.waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on: busy stays the same
                return
        lane.busy -= 1

    @property
    def queued(self) -> int:
        """Calls of every service waiting for a slot (they hold no connection yet)."""
        return sum(len(lane.waiting) for lane in self._lanes.values())

    def waiting(self, service: str) -> int:
        """Calls of ``service`` waiting for a slot."""
        lane = self._lanes.get(service)
        return 0 if lane is None else len(lane.waiting)

    def busy(self, service: str) -> int:
        """Calls of ``service`` holding a slot."""
        lane = self._lanes.get(service)
        return 0 if lane is None else lane.busy
