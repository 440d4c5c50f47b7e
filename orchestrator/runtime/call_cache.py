"""Keep the answers of cached reads, and make identical reads in flight once.

An operation that declares a cache (``cache: {ttl_ms: ...}`` on a GET in the
catalog, ``@service.operation(cache_ttl_ms=...)`` on an SDK operation run
in-process) is called through the dispatcher's one :class:`CallCache`. A call is
known by its service, operation and input as canonical JSON (keys sorted), so
``{"a": 1, "b": 2}`` and ``{"b": 2, "a": 1}`` are the same call.

- **Kept answers.** An ``ok`` outcome is reused for ``ttl_ms`` from when it
  arrived, on the monotonic clock. Business errors, technical errors and timeouts
  are never kept: the next call asks again.
- **Coalescing.** A call identical to one in flight waits for that one instead of
  making its own. The shared call is a task of its own: a waiter that goes (its
  saga ended, and :meth:`~orchestrator.runtime.dispatcher.CallDispatcher.cancel`
  cancelled its call) leaves it running for the others. When the last waiter
  goes, the shared call is cancelled, which frees its connection just as
  cancelling an uncached call does. Waiters of one shared call all get its
  outcome, an error included (they were asking at the same moment). A waiter
  that joined another's call holds no connection (``joined_waiters``), so the
  dispatcher does not count it against the calls-in-flight limit.
- **Whose call it is.** The shared call runs with the first caller's context
  (idempotency key, deadline) and the first caller's timeout, so the downstream
  sees one coherent request and a deadline that matches its timeout. A caller
  joins a shared call only while the first caller's deadline has not passed: a
  retry made after a timeout starts a fresh call instead of joining one that is
  about to time out. A joiner whose own deadline is later than the first's gets
  the shared call's answer, or its timeout as a technical error that the step's
  ``retry`` handles like any other.
- **Bounded.** At most ``max_entries`` answers are kept; the least recently used
  goes first. An expired answer is dropped when it is next looked up (or when it
  reaches the end of the LRU order). ``max_entries=0`` keeps none, and identical
  calls in flight are still made once.

The dispatcher still delivers one reply event per saga for a kept or shared
answer, so the changelog and a restore see a reply like any other. The sagas that
get one answer share its output object: the saga core treats outputs as values
and never changes them (it already shares identical calls' answers inside one
saga).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import Any

import orjson

from handlers.outcome import CallOutcome
from orchestrator.errors import SetupError

DEFAULT_MAX_ENTRIES = 10_000

Perform = Callable[[], Coroutine[Any, Any, CallOutcome]]
"""Makes the call once; like an in-process adapter's ``call``, it must not raise."""
_Key = tuple[str, str, bytes]


class _Kept:
    """An ``ok`` answer and when it stops being reused (monotonic seconds)."""

    __slots__ = ("expires_at", "outcome")

    def __init__(self, outcome: CallOutcome, expires_at: float) -> None:
        self.outcome = outcome
        self.expires_at = expires_at


class _Flight:
    """One call in flight and how many callers wait for it."""

    __slots__ = ("open_until", "task", "waiters")

    def __init__(self, task: asyncio.Task[CallOutcome], open_until: float) -> None:
        self.task = task
        self.open_until = open_until
        """Monotonic seconds at which the first caller's deadline passes: no one joins later."""
        self.waiters = 0


class CallCache:
    """Kept answers and shared calls in flight, for the cached operations of one process.

    The counters are plain ints, cheap to read for metrics: ``hits`` (calls answered
    from a kept answer), ``misses`` (calls made to the adapter), ``coalesced`` (calls
    that waited for an identical one in flight) and ``evictions`` (answers still
    fresh that were dropped to stay within ``max_entries``).

    Args:
        max_entries: answers kept at most (0 keeps none; calls are still coalesced).
        clock: monotonic seconds (never the epoch clock); a test passes its own.
    """

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 0:
            raise SetupError(f"max_entries must be 0 or more, got {max_entries}.")
        self.max_entries = max_entries
        self._clock = clock
        self._kept: OrderedDict[_Key, _Kept] = OrderedDict()
        """Least recently used first."""
        self._flights: dict[_Key, _Flight] = {}
        """The call a new identical caller would join."""
        self._running: set[asyncio.Task[CallOutcome]] = set()
        self.hits = 0
        self.misses = 0
        self.coalesced = 0
        self.evictions = 0
        self.joined_waiters = 0
        """Calls waiting now for a shared call that another caller made: they hold no
        connection, so the dispatcher leaves them out of its calls in flight."""

    def __len__(self) -> int:
        """Answers kept now (expired ones included until they are looked up)."""
        return len(self._kept)

    @property
    def calls_in_flight(self) -> int:
        """Shared calls running now."""
        return len(self._running)

    async def call(
        self,
        service: str,
        operation: str,
        payload: Any,
        *,
        ttl_ms: int,
        time_left_s: float,
        perform: Perform,
    ) -> CallOutcome:
        """Answer from a kept answer, join the identical call in flight, or make it.

        Args:
            service, operation, payload: what is called; they make the key.
            ttl_ms: how long an ok answer of this call is kept.
            time_left_s: the caller's time until its deadline; if this call is the
                one made, others may join it for that long.
            perform: makes the call (with this caller's context and timeout).

        Cancelling the returned coroutine leaves a shared call running for its
        other waiters; the last waiter to go cancels it.
        """
        try:
            key = (service, operation, orjson.dumps(payload, option=orjson.OPT_SORT_KEYS))
        except TypeError:
            # Not JSON-ready (a flow's expressions cannot produce it): not cached.
            self.misses += 1
            return await perform()
        now = self._clock()
        kept = self._kept.get(key)
        if kept is not None:
            if now < kept.expires_at:
                self._kept.move_to_end(key)
                self.hits += 1
                return kept.outcome
            del self._kept[key]
        flight = self._flights.get(key)
        if flight is None or now >= flight.open_until:
            # A flight past its first caller's deadline stays for its own waiters.
            flight = self._take_off(
                key, ttl_ms=ttl_ms, open_until=now + time_left_s, perform=perform
            )
        else:
            self.coalesced += 1
            self.joined_waiters += 1
        flight.waiters += 1
        try:
            # shield: cancelling this waiter must not cancel the call the others share.
            return await asyncio.shield(flight.task)
        finally:
            flight.waiters -= 1
            # A flight with w waiters holds one connection for w calls: w - 1 joined.
            if flight.waiters:
                self.joined_waiters -= 1
            elif not flight.task.done():
                # The last saga waiting for it has gone: free its connection.
                if self._flights.get(key) is flight:
                    del self._flights[key]
                flight.task.cancel()

    async def aclose(self) -> None:
        """Cancel the shared calls still running and wait for them to end."""
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        self._flights.clear()
        self._kept.clear()

    def _take_off(self, key: _Key, *, ttl_ms: int, open_until: float, perform: Perform) -> _Flight:
        self.misses += 1
        task = asyncio.create_task(
            self._fly(key, ttl_ms=ttl_ms, perform=perform), name=f"cached {key[0]}.{key[1]}"
        )
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        flight = self._flights[key] = _Flight(task, open_until)
        return flight

    async def _fly(self, key: _Key, *, ttl_ms: int, perform: Perform) -> CallOutcome:
        try:
            outcome = await perform()
        finally:
            flight = self._flights.get(key)
            if flight is not None and flight.task is asyncio.current_task():
                del self._flights[key]
        # No await since the flight left the table: a caller finds the answer kept,
        # or (an error) makes a call of its own, never neither.
        if outcome.status == "ok":
            self._keep(key, outcome, ttl_ms=ttl_ms)
        return outcome

    def _keep(self, key: _Key, outcome: CallOutcome, *, ttl_ms: int) -> None:
        if not self.max_entries:
            return
        now = self._clock()
        self._kept[key] = _Kept(outcome, now + ttl_ms / 1000)
        self._kept.move_to_end(key)
        while len(self._kept) > self.max_entries:
            _, evicted = self._kept.popitem(last=False)
            if evicted.expires_at > now:
                self.evictions += 1
