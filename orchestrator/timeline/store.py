"""The timeline's index of recent sagas, rebuilt from the topics (no database).

:class:`TimelineStore` is plain data with no I/O: the
:class:`~orchestrator.timeline.reader.TimelineReader` feeds it result events and
saga changelog records, the page's routes query it. It is bounded: past
``max_sagas`` the saga seen longest ago drops out.

The result event is the dependable source: a saga that ends within
``ORCH_CHANGELOG_DELAY_MS`` writes no start record to the changelog (write-behind),
so only sagas still running for longer show up before their result does.
"""

from __future__ import annotations

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
    """The most recent ``max_sagas`` sagas, by request id."""

    def __init__(self, *, max_sagas: int) -> None:
        self.max_sagas = max(1, max_sagas)
        self._sagas: OrderedDict[str, SagaEntry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sagas)

    def add_result(self, result: dict[str, Any]) -> None:
        """A result event was read: the saga has ended (a later copy replaces it)."""
        request_id = result.get("request_id")
        started = result.get("started_at_ms")
        if not isinstance(request_id, str) or not isinstance(started, int):
            return
        kept = {key: value for key, value in result.items() if key != "data"}
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
        if request_id not in self._sagas:
            self._put(
                SagaEntry(
                    request_id=request_id, flow=flow, status=RUNNING, started_at_ms=started_ms
                )
            )

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
        self._sagas[entry.request_id] = entry
        self._sagas.move_to_end(entry.request_id)
        while len(self._sagas) > self.max_sagas:
            self._sagas.popitem(last=False)


def _has_status(entry: SagaEntry, status: str) -> bool:
    if status == PARTIAL:
        return entry.status == "completed" and entry.complete is False
    return entry.status == status
