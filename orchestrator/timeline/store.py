"""The timeline's index of recent sagas, rebuilt from the topics (no database).

:class:`TimelineStore` is plain data with no I/O: the
:class:`~orchestrator.timeline.reader.TimelineReader` feeds it result events and
saga changelog records, the page's routes query it. It is bounded: past
``max_sagas`` the saga that started longest ago drops out, whatever the order the
records were read in (the reader catches up one partition after another).

Results older than schema version 3 (still in the window after an upgrade) have
no per-step times: :meth:`TimelineStore.add_result` fills the missing fields with
empty ones, so every detail has the same shape.

The result event is the dependable source: a saga that ends within
``ORCH_CHANGELOG_DELAY_MS`` writes no start record to the changelog (write-behind),
so only sagas still running for longer show up before their result does.
"""

from __future__ import annotations

import heapq
import itertools
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

RUNNING = "running"
PARTIAL = "partial"
"""A filter, not a status: completed with ``complete: false``."""
STATUSES = (RUNNING, "completed", PARTIAL, "failed", "compensation_failed")
MAX_LIVE_EVENTS = 100
"""Recorded events kept per running saga (its replies and timeouts so far)."""
ENDED_PER_SAGA = 2
"""Ended request ids remembered per saga held (``max_sagas`` times this), so a start
record read after its saga's result or finished marker never shows it running."""
_STEP_DEFAULTS: dict[str, Any] = {"attempts": 0, "started_ms": None, "finished_ms": None}
"""Step fields a result before schema version 3 may lack (``call_timeline`` too)."""


@dataclass(slots=True)
class SagaEntry:
    """What the timeline knows of one saga."""

    request_id: str
    flow: str | None
    status: str
    started_at_ms: int
    finished_at_ms: int | None = None
    complete: bool | None = None
    result: dict[str, Any] | None = None
    """The result event without its ``data`` (the page shows no business data)."""
    events: list[dict[str, Any]] = field(default_factory=list)
    """For a running saga: the events recorded so far (capped)."""
    event_count: int = 0
    order: int = 0
    """Its ticket in the store's eviction heap (a replaced entry's old ticket is stale)."""

    def summary(self) -> dict[str, Any]:
        """The row of the saga list."""
        finished = self.finished_at_ms
        return {
            "request_id": self.request_id,
            "flow": self.flow,
            "status": self.status,
            "complete": self.complete,
            "started_at_ms": self.started_at_ms,
            "finished_at_ms": finished,
            "duration_ms": None if finished is None else finished - self.started_at_ms,
        }

    def detail(self) -> dict[str, Any]:
        """The saga as the detail view draws it."""
        return {
            **self.summary(),
            "steps": [] if self.result is None else self.result.get("steps", []),
            "errors": [] if self.result is None else self.result.get("errors", []),
            "flow_version": None if self.result is None else self.result.get("flow_version"),
            "events": self.events,
            "event_count": self.event_count,
        }


class TimelineStore:
    """The ``max_sagas`` most recently started sagas, by request id."""

    def __init__(self, *, max_sagas: int) -> None:
        self.max_sagas = max(1, max_sagas)
        self._sagas: dict[str, SagaEntry] = {}
        self._by_start: list[tuple[int, int, str]] = []
        """A min-heap of (start, ticket, request id); tickets of replaced entries are stale."""
        self._tickets = itertools.count(1)
        self._ended: OrderedDict[str, None] = OrderedDict()
        """Request ids known to have ended (bounded, oldest forgotten first)."""

    def __len__(self) -> int:
        return len(self._sagas)

    def held_records(self) -> int:
        """Entries in the eviction heap, stale ones included (stays within a few times
        ``max_sagas``)."""
        return len(self._by_start)

    def add_result(self, result: dict[str, Any]) -> None:
        """A result event was read: the saga has ended (a later copy replaces it)."""
        request_id = result.get("request_id")
        started = result.get("started_at_ms")
        if not isinstance(request_id, str) or not isinstance(started, int):
            return
        kept = {key: value for key, value in result.items() if key != "data"}
        kept["steps"] = _steps(kept.get("steps"))
        if not isinstance(kept.get("errors"), list):
            kept["errors"] = []
        self._remember_ended(request_id)
        self._put(
            SagaEntry(
                request_id=request_id,
                flow=result.get("flow"),
                status=str(result.get("status")),
                started_at_ms=started,
                finished_at_ms=result.get("finished_at_ms"),
                complete=result.get("complete"),
                result=kept,
            )
        )

    def add_start(self, request_id: str, *, flow: str | None, started_ms: int) -> None:
        """A saga's start record was read from the changelog: it runs, unless ended."""
        if request_id not in self._sagas and request_id not in self._ended:
            self._put(
                SagaEntry(
                    request_id=request_id, flow=flow, status=RUNNING, started_at_ms=started_ms
                )
            )

    def end(self, request_id: str) -> None:
        """The saga's finished marker (or its tombstone) was read: it runs no more.

        A running entry drops out (its result, if it was published within the window,
        is read from the result topic); an entry with its result stays.
        """
        self._remember_ended(request_id)
        entry = self._sagas.get(request_id)
        if entry is not None and entry.status == RUNNING:
            del self._sagas[request_id]

    def is_running(self, request_id: str) -> bool:
        """Whether the saga is held as running (its recorded events are wanted)."""
        entry = self._sagas.get(request_id)
        return entry is not None and entry.status == RUNNING

    def add_event(self, request_id: str, event: dict[str, Any]) -> None:
        """A running saga recorded an event (a reply, a timeout, a retry, its deadline)."""
        entry = self._sagas.get(request_id)
        if entry is None or entry.status != RUNNING:
            return
        entry.event_count += 1
        if len(entry.events) < MAX_LIVE_EVENTS:
            at = event.get("at")
            entry.events.append(
                {
                    "kind": event.get("k"),
                    "call": event.get("call"),
                    "attempt": event.get("attempt"),
                    "status": event.get("status"),
                    "code": event.get("code"),
                    "at_ms": at - entry.started_at_ms if isinstance(at, int) else None,
                }
            )

    def sagas(
        self,
        *,
        flow: str | None = None,
        status: str | None = None,
        query: str | None = None,
        limit: int = 200,
        visible: Callable[[str | None], bool] | None = None,
    ) -> list[dict[str, Any]]:
        """Summaries, the latest started first, of the sagas that match every filter given.

        ``status`` is a result status, ``running``, or ``partial`` (completed, not
        complete); ``query`` matches part of the request id, ignoring case;
        ``visible`` says which flows' sagas the caller may see (None: all).
        """
        needle = query.lower() if query else None
        found = [
            entry
            for entry in self._sagas.values()
            if (visible is None or visible(entry.flow))
            and (not flow or entry.flow == flow)
            and (not status or _has_status(entry, status))
            and (needle is None or needle in entry.request_id.lower())
        ]
        found.sort(key=lambda entry: entry.started_at_ms, reverse=True)
        return [entry.summary() for entry in found[: max(0, limit)]]

    def detail(
        self, request_id: str, *, visible: Callable[[str | None], bool] | None = None
    ) -> dict[str, Any] | None:
        """One saga's detail, or None if the timeline does not hold it (or hides it)."""
        entry = self._sagas.get(request_id)
        if entry is None or (visible is not None and not visible(entry.flow)):
            return None
        return entry.detail()

    def flows(self, *, visible: Callable[[str | None], bool] | None = None) -> list[str]:
        """The names of the flows of the sagas held (those the caller may see)."""
        names = {entry.flow for entry in self._sagas.values() if entry.flow}
        return sorted(name for name in names if visible is None or visible(name))

    def _put(self, entry: SagaEntry) -> None:
        entry.order = next(self._tickets)
        self._sagas[entry.request_id] = entry
        heapq.heappush(self._by_start, (entry.started_at_ms, entry.order, entry.request_id))
        while len(self._sagas) > self.max_sagas:
            _, order, request_id = heapq.heappop(self._by_start)
            held = self._sagas.get(request_id)
            if held is not None and held.order == order:
                del self._sagas[request_id]
        if len(self._by_start) > 2 * self.max_sagas + 16:
            # Replaced and ended entries left stale tickets: keep only the live ones.
            self._by_start = [
                (held.started_at_ms, held.order, held.request_id) for held in self._sagas.values()
            ]
            heapq.heapify(self._by_start)

    def _remember_ended(self, request_id: str) -> None:
        self._ended[request_id] = None
        self._ended.move_to_end(request_id)
        while len(self._ended) > ENDED_PER_SAGA * self.max_sagas:
            self._ended.popitem(last=False)


def _steps(steps: Any) -> list[dict[str, Any]]:
    """The result's step summaries, each with every field of schema version 3."""
    if not isinstance(steps, list):
        return []
    return [
        {**_STEP_DEFAULTS, **step, "call_timeline": _list(step.get("call_timeline"))}
        for step in steps
        if isinstance(step, dict)
    ]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _has_status(entry: SagaEntry, status: str) -> bool:
    if status == PARTIAL:
        return entry.status == "completed" and entry.complete is False
    return entry.status == status
