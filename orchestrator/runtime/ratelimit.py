"""A rate limit per service: a token bucket, as calls see it.

``rate_limit: {per_second: R, burst: B, max_wait_ms: W}`` lets at most ``B`` calls
start at once and ``R`` per second after that: over any span of ``t`` seconds, at
most ``B + R * t`` calls start. It is the generic cell rate algorithm (GCRA), which
is a token bucket kept as one number, the *theoretical arrival time*: each call
reserves the next free start time, so a call knows at once how long it must wait.

- A call whose start time is now goes at once.
- A call that must wait less than ``max_wait_ms`` sleeps until its start time;
  the dispatcher arms its deadline only after that, so a wait for a token never
  counts against the call's timeout (as with the bulkhead's wait for a slot).
- A call that would wait longer is refused at once with ``rate_limit.exceeded``,
  a technical error whose ``retry_after_ms`` is the wait it would have had, so the
  step's ``retry`` (if any) comes back no sooner than a token would.

A call cancelled while it waits keeps its reservation (the service then sees fewer
calls than allowed, never more). Pure arithmetic on an injected monotonic clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from contracts.catalog import RateLimitPolicy


class RateLimiter:
    """The rate limit of one service.

    Args:
        policy: the catalog's ``rate_limit`` entry of the service.
        clock: monotonic seconds; a test passes its own.
    """

    def __init__(
        self, policy: RateLimitPolicy, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._interval = 1 / policy.per_second
        self._tolerance = (policy.burst - 1) * self._interval
        self._max_wait = policy.max_wait_ms / 1000
        self._next_free = clock()
        """The theoretical arrival time: when the bucket is full again."""

    def reserve(self) -> float | None:
        """Reserve the next start time: the seconds to wait (0.0: go now), or None
        when the wait would exceed ``max_wait_ms`` (nothing is reserved then)."""
        now = self._clock()
        arrival = max(self._next_free, now)
        wait = max(arrival - self._tolerance - now, 0.0)
        if wait > self._max_wait:
            return None
        self._next_free = arrival + self._interval
        return wait

    def wait_needed(self) -> float:
        """Seconds until a call could start without waiting (for ``retry_after_ms``)."""
        return max(self._next_free - self._tolerance - self._clock(), 0.0)
