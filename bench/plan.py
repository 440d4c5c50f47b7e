"""What a benchmark run measures: ``make bench`` (full) and ``make bench-quick``.

Every phase is bounded by a count *and* a time, so a slow system (Temporal's
serial latency is ~100x the floor's) costs the run seconds, not minutes; the
result file says how many requests each phase completed.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Plan:
    """Phases and sizes of one run."""

    name: str
    repeats: int
    serial_requests: int
    serial_max_s: float
    concurrencies: tuple[int, ...]
    """Closed-loop client counts; each runs ``closed_requests`` or ``closed_max_s``."""
    closed_requests: int
    closed_max_s: float
    open_rates: tuple[int, ...]
    """Offered rates (requests/s) for the open loop; a system stops at saturation."""
    open_seconds: float
    admission_waiting: tuple[int, ...]
    """Requests waiting at once (closed loop) for the admission check (orchestrator only)."""
    admission_max_s: float
    memory_in_flight: tuple[int, ...]
    """Sagas held in flight (a Kafka step nobody answers) for the memory and GC figures."""
    peers_required: bool
    """Full runs install and build the peers; quick runs use them only if already built."""
    cache_requests: int = 2000
    systems: tuple[str, ...] = field(default=())
    """Empty: every system."""
    warm_up_s: float = 10
    """Unmeasured load through the orchestrator first: the broker's JVM warms up."""


QUICK = Plan(
    name="quick",
    repeats=1,
    serial_requests=150,
    serial_max_s=4,
    concurrencies=(50,),
    closed_requests=1500,
    closed_max_s=6,
    open_rates=(100,),
    open_seconds=3,
    admission_waiting=(),
    admission_max_s=0,
    memory_in_flight=(3_000,),
    peers_required=False,
    cache_requests=600,
    systems=(
        "direct-aiohttp",
        "direct-httpx",
        "orchestrator",
        "orchestrator-kafka-step",
        "restate",
        "temporal",
    ),
    warm_up_s=4,
)

FULL = Plan(
    name="full",
    repeats=3,
    serial_requests=300,
    serial_max_s=7,
    concurrencies=(10, 50, 200),
    closed_requests=4000,
    closed_max_s=7,
    open_rates=(50, 100, 200, 400, 800),
    open_seconds=4,
    admission_waiting=(50, 500, 2_000, 10_000),
    admission_max_s=25,
    memory_in_flight=(10_000, 100_000),
    peers_required=True,
)
