"""The circuit breaker and rate limit of each in-process service, as the dispatcher uses them.

A call of a service passes, in this order:

1. its circuit, at dispatch: an open circuit answers ``circuit.open`` at once
   (:meth:`ServiceGuards.refusal_now`), without waiting for a slot or a turn;
2. its bulkhead slot (:class:`~orchestrator.runtime.bulkhead.Bulkheads`), then its
   turn under the rate limit (:meth:`ServiceGuards.take_turn`): a slot first, so a
   call starts as soon as it has its turn and the service never sees calls that
   waited for turns arrive together; both waits come before the call's deadline
   is armed, so neither counts against its timeout;
3. its circuit again, around the call itself (:meth:`ServiceGuards.through_circuit`),
   which takes a half-open probe's place and records the outcome.

A cached operation's call skips 1 and 2 (most are answered from the cache without
a call): when the cache does make a call, that call takes its turn and passes its
circuit inside the cache's shared call, and its wait for a turn counts against the
first caller's time. A cached answer is served even while the circuit is open.

Services without a ``circuit`` or ``rate_limit`` in the catalog pay one dict lookup.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping

from contracts.catalog import CircuitPolicy, RateLimitPolicy
from handlers.outcome import CallOutcome
from orchestrator.runtime.circuit import CircuitBreaker
from orchestrator.runtime.metrics import CoordinatorMetrics
from orchestrator.runtime.ratelimit import RateLimiter


class ServiceGuards:
    """Circuits and rate limiters by service name (only the services that declare them)."""

    def __init__(
        self,
        *,
        circuits: Mapping[str, CircuitPolicy],
        rate_limits: Mapping[str, RateLimitPolicy],
        metrics: CoordinatorMetrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.circuits = {name: CircuitBreaker(p, clock=clock) for name, p in circuits.items()}
        self.limiters = {name: RateLimiter(p, clock=clock) for name, p in rate_limits.items()}
        self._metrics = metrics
        metrics.watch_circuits(
            lambda: {
                name: (circuit.state != "closed", circuit.openings)
                for name, circuit in self.circuits.items()
            }
        )

    def refusal_now(self, service: str) -> CallOutcome | None:
        """``circuit.open`` if the service's circuit is open now, else None."""
        circuit = self.circuits.get(service)
        if circuit is None or not circuit.rejecting():
            return None
        return self._circuit_open(service)

    async def take_turn(self, service: str) -> CallOutcome | None:
        """Wait for the service's next turn; ``rate_limit.exceeded`` (not waiting)
        if the turn is further away than ``max_wait_ms``; None without a limit."""
        limiter = self.limiters.get(service)
        if limiter is None:
            return None
        wait_s = limiter.reserve()
        if wait_s is None:
            self._metrics.call_rejected(service, "rate_limit")
            retry_after_ms = max(int(limiter.wait_needed() * 1000), 1)
            return CallOutcome.technical_error(
                "rate_limit.exceeded",
                f"{service} allows {limiter.policy.per_second:g} calls per second; this call "
                f"would have waited {retry_after_ms} ms, over its max_wait_ms "
                f"({limiter.policy.max_wait_ms})",
                retry_after_ms=retry_after_ms,
            )
        if wait_s > 0:
            self._metrics.rate_limit_waited(service, wait_s)
            await asyncio.sleep(wait_s)
        return None

    async def through_circuit(
        self,
        service: str,
        call: Callable[[], Awaitable[CallOutcome]],
        *,
        overdue: Callable[[], bool],
    ) -> CallOutcome:
        """Make ``call`` if the service's circuit admits it, and record its outcome.

        A call cancelled once ``overdue()`` (past its deadline: its saga timed out and
        ended first) counts as a failure, so a service that only ever times out still
        opens its circuit; one cancelled earlier (its saga ended for another reason)
        counts as neither.
        """
        circuit = self.circuits.get(service)
        if circuit is None:
            return await call()
        permit = circuit.admit()
        if permit is None:
            return self._circuit_open(service)
        try:
            outcome = await call()
        except BaseException:
            if overdue():
                circuit.record(permit, failed=True)
            else:
                circuit.release(permit)
            raise
        circuit.record(permit, failed=outcome.status == "technical_error")
        return outcome

    def _circuit_open(self, service: str) -> CallOutcome:
        """``circuit.open``; while open (not probing), its ``retry_after_ms`` is the time
        left until a probe may go, so a step's retry does not spend its attempts on a
        circuit that cannot let them through yet."""
        self._metrics.call_rejected(service, "circuit_open")
        open_for_s = self.circuits[service].open_for_s()
        return CallOutcome.technical_error(
            "circuit.open",
            f"the circuit of {service} is open: it failed too often lately, so the call "
            "was not made",
            retry_after_ms=None if open_for_s is None else max(int(open_for_s * 1000), 1),
        )
