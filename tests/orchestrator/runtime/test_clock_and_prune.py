"""The coordinator's clock is anchored on monotonic time; DeadlineHeap.prune drops
timers of gone sagas and keeps the rest in order."""

from __future__ import annotations

import time

import pytest

from orchestrator.runtime.coordinator import system_clock
from orchestrator.runtime.timers import Deadline, DeadlineHeap

HOUR_NS = 3_600 * 1_000_000_000


def test_system_clock_ignores_a_wall_clock_jump(monkeypatch: pytest.MonkeyPatch) -> None:
    real_time_ns = time.time_ns
    before = system_clock()
    monkeypatch.setattr(time, "time_ns", lambda: real_time_ns() + HOUR_NS)
    after = system_clock()

    assert time.time_ns() // 1_000_000 - before >= 3_600_000, "the patch took effect"
    assert 0 <= after - before < 1_000, "an NTP step must not move deadlines"


def test_system_clock_follows_monotonic_time(monkeypatch: pytest.MonkeyPatch) -> None:
    frozen = time.monotonic_ns()
    monkeypatch.setattr(time, "monotonic_ns", lambda: frozen)
    at_start = system_clock()
    monkeypatch.setattr(time, "monotonic_ns", lambda: frozen + 5_000_000_000)

    assert system_clock() - at_start == 5_000


def test_system_clock_reads_as_epoch_milliseconds() -> None:
    # Times on the wire mean something to other hosts: close to the wall clock
    # (nothing in this test run steps it).
    assert abs(system_clock() - time.time_ns() // 1_000_000) < 60_000


def _push(heap: DeadlineHeap, at_ms: int, request_id: str, run: int = 1) -> bool:
    return heap.push(at_ms=at_ms, request_id=request_id, call="a", attempt=1, run=run)


def test_prune_drops_what_keep_rejects_and_reports_how_many() -> None:
    heap = DeadlineHeap()
    for at_ms, request_id in [(500, "gone-1"), (100, "live-1"), (300, "gone-2"), (200, "live-2")]:
        _push(heap, at_ms, request_id)
    _push(heap, 50, "live-1", run=2)  # a timer of another run of a live request id

    def alive(deadline: Deadline) -> bool:
        return deadline.request_id.startswith("live") and deadline.run == 1

    dropped = heap.prune(alive)

    assert dropped == 3
    assert len(heap) == 2
    assert heap.next_at_ms() == 100
    assert [(entry.at_ms, entry.request_id) for entry in heap.pop_due(10_000)] == [
        (100, "live-1"),
        (200, "live-2"),
    ]


def test_prune_keeps_the_heap_ordered_by_time_then_arrival() -> None:
    heap = DeadlineHeap()
    times = [(at_ms * 7919) % 1_000 for at_ms in range(200)]
    for n, at_ms in enumerate(times):
        _push(heap, at_ms, f"r-{n}")

    dropped = heap.prune(lambda deadline: int(deadline.request_id[2:]) % 3 != 0)
    # Pushing after a prune still reports whether the new timer is the earliest.
    earliest = _push(heap, -1, "new-earliest")
    not_earliest = _push(heap, 999, "new-late")

    kept = heap.pop_due(10_000)
    assert dropped == len([n for n in range(200) if n % 3 == 0])
    assert (earliest, not_earliest) == (True, False)
    assert kept[0].request_id == "new-earliest"
    assert kept == sorted(kept), "popped in (time, arrival) order"
    assert len(kept) == 200 - dropped + 2
    assert all(isinstance(entry, Deadline) for entry in kept)


def test_prune_of_everything_or_nothing() -> None:
    heap = DeadlineHeap()
    assert heap.prune(lambda deadline: False) == 0
    for n in range(5):
        _push(heap, n, f"r-{n}")

    assert heap.prune(lambda deadline: True) == 0
    assert len(heap) == 5
    assert heap.prune(lambda deadline: False) == 5
    assert len(heap) == 0
    assert heap.next_at_ms() is None
    assert heap.pop_due(10**12) == []
