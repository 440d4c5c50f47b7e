"""A circuit breaker per service: stop calling a downstream that keeps failing.

Three states, as in Resilience4j and Polly (the failure *ratio* over a time window,
not a count of consecutive failures, so one slow error among many answers does not
trip it, and a burst of errors does):

- **closed**: calls go through. Their outcomes are counted in a sliding window of
  ``window_ms`` (ten buckets, so a call costs two additions). Once the window holds
  at least ``min_calls`` calls and at least ``failure_ratio`` of them failed, the
  circuit opens.
- **open**: calls fail at once (``circuit.open``, a technical error that the
  step's ``retry`` handles like any other) without reaching the service, for
  ``open_ms``.
- **half-open**: after ``open_ms``, up to ``half_open_calls`` probes go through;
  once that many succeed in a row the circuit closes (with an empty window),
  and a probe that fails opens it again for another ``open_ms``.

A failure is a technical error (``http.5xx``, ``http.timeout``,
``http.unreachable``, ``adapter.exception``...): the service could not answer.
A business error (``http.404``...) is an answer, so it counts as a success. A call
cancelled past its deadline (its saga timed out first) is a failure too; one
cancelled earlier (its saga ended for another reason) counts as neither, and gives
its probe place back. Each admitted call holds a :class:`Permit` naming the state it
was admitted in, so an outcome of a call admitted before the circuit changed state
(an old closed-state call finishing while probes run) never decides the new state.

Pure bookkeeping, no I/O: time comes from an injected monotonic clock (seconds).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from contracts.catalog import CircuitPolicy

CircuitState = Literal["closed", "open", "half_open"]

_BUCKETS = 10


@dataclass(frozen=True, slots=True)
class Permit:
    """Leave to make one call: the state generation it was admitted in."""

    generation: int
    probe: bool


class CircuitBreaker:
    """The circuit of one service.

    Args:
        policy: the catalog's ``circuit`` entry of the service.
        clock: monotonic seconds; a test passes its own.
    """

    def __init__(
        self, policy: CircuitPolicy, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._bucket_s = policy.window_ms / 1000 / _BUCKETS
        self._calls = [0] * _BUCKETS
        self._failures = [0] * _BUCKETS
        self._bucket_index = 0
        self._bucket_started = clock()
        self.state: CircuitState = "closed"
        self._generation = 0
        self._open_until = 0.0
        self._probes_out = 0
        """Probes admitted in this half-open state and not yet answered or released."""
        self._probes_passed = 0
        self.openings = 0
        """How often the circuit opened (a counter for metrics)."""

    def rejecting(self) -> bool:
        """Whether a call now would be refused at once (open, cool-down not over),
        without changing anything."""
        return self.state == "open" and self._clock() < self._open_until

    def open_for_s(self) -> float | None:
        """Seconds until an open circuit lets a probe through; None unless open."""
        if self.state != "open":
            return None
        return max(self._open_until - self._clock(), 0.0)

    def admit(self) -> Permit | None:
        """Leave to make one call now, or None (``circuit.open``)."""
        if self.state == "closed":
            return Permit(self._generation, probe=False)
        if self.state == "open":
            if self._clock() < self._open_until:
                return None
            self._enter("half_open")
        if self._probes_out + self._probes_passed >= self.policy.half_open_calls:
            return None  # enough probes out; the others wait for their verdict
        self._probes_out += 1
        return Permit(self._generation, probe=True)

    def record(self, permit: Permit, *, failed: bool) -> None:
        """The outcome of a call made under ``permit``."""
        if permit.generation != self._generation:
            return  # admitted before the circuit last changed state
        if permit.probe:
            self._probes_out -= 1
            if failed:
                self._enter("open")
            else:
                self._probes_passed += 1
                if self._probes_passed >= self.policy.half_open_calls:
                    self._enter("closed")
            return
        index = self._current_bucket()
        self._calls[index] += 1
        if failed:
            self._failures[index] += 1
            calls = sum(self._calls)
            if (
                calls >= self.policy.min_calls
                and sum(self._failures) >= self.policy.failure_ratio * calls
            ):
                self._enter("open")

    def release(self, permit: Permit) -> None:
        """A call made under ``permit`` ended without an outcome (cancelled)."""
        if permit.probe and permit.generation == self._generation:
            self._probes_out -= 1

    def _enter(self, state: CircuitState) -> None:
        self.state = state
        self._generation += 1
        self._probes_out = self._probes_passed = 0
        if state == "open":
            self.openings += 1
            self._open_until = self._clock() + self.policy.open_ms / 1000
        elif state == "closed":
            self._calls = [0] * _BUCKETS
            self._failures = [0] * _BUCKETS
            self._bucket_started = self._clock()

    def _current_bucket(self) -> int:
        """The bucket of now, emptying those the window has slid past."""
        elapsed = self._clock() - self._bucket_started
        if elapsed < self._bucket_s:
            return self._bucket_index
        steps = int(elapsed / self._bucket_s)
        for _ in range(min(steps, _BUCKETS)):
            self._bucket_index = (self._bucket_index + 1) % _BUCKETS
            self._calls[self._bucket_index] = 0
            self._failures[self._bucket_index] = 0
        self._bucket_started += steps * self._bucket_s
        return self._bucket_index
