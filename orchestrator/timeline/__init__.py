"""The execution timeline: recent sagas and their calls on a time axis, rebuilt from
the result topic and the saga changelog (no database). ``orchestrator serve`` serves
it at ``/timeline``."""

from orchestrator.timeline.reader import TimelineReader
from orchestrator.timeline.routes import Timeline, create_timeline_app, timeline_routes
from orchestrator.timeline.store import TimelineStore

__all__ = [
    "Timeline",
    "TimelineReader",
    "TimelineStore",
    "create_timeline_app",
    "timeline_routes",
]
