"""DeadlineHeap: one heap of call deadlines, popped when due."""

from __future__ import annotations

from orchestrator.runtime.timers import Deadline, DeadlineHeap


def push(heap: DeadlineHeap, at_ms: int, call: str) -> bool:
    return heap.push(at_ms=at_ms, request_id=f"r-{call}", call=call, attempt=1)


def test_empty_heap() -> None:
    heap = DeadlineHeap()

    assert len(heap) == 0
    assert heap.next_at_ms() is None
    assert heap.pop_due(10**12) == []


def test_push_reports_whether_the_entry_is_now_the_earliest() -> None:
    heap = DeadlineHeap()

    assert [
        push(heap, 500, "a"),
        push(heap, 700, "b"),
        push(heap, 300, "c"),
        push(heap, 300, "d"),  # ties go to the earlier arrival
        push(heap, 299, "e"),
    ] == [True, False, True, False, True]
    assert len(heap) == 5
    assert heap.next_at_ms() == 299


def test_pop_due_returns_due_deadlines_in_time_then_arrival_order() -> None:
    heap = DeadlineHeap()
    for at_ms, call in [(500, "a"), (100, "b"), (300, "c"), (100, "d"), (900, "e")]:
        push(heap, at_ms, call)

    assert heap.pop_due(99) == []
    due = heap.pop_due(300)

    assert [(entry.at_ms, entry.call) for entry in due] == [(100, "b"), (100, "d"), (300, "c")]
    assert len(heap) == 2
    assert heap.next_at_ms() == 500
    assert [entry.call for entry in heap.pop_due(10_000)] == ["a", "e"]
    assert len(heap) == 0


def test_deadline_keeps_the_call_it_is_for() -> None:
    heap = DeadlineHeap()
    heap.push(at_ms=5, request_id="r-1", call="products#2", attempt=3)

    [entry] = heap.pop_due(5)

    assert isinstance(entry, Deadline)
    assert (entry.request_id, entry.call, entry.attempt) == ("r-1", "products#2", 3)


def test_deadlines_compare_by_time_then_sequence_only() -> None:
    early = Deadline(1, 2, "z", "z", 9)
    late = Deadline(2, 1, "a", "a", 1)

    assert early < late
    assert Deadline(1, 1, "x", "x", 1) == Deadline(1, 1, "y", "y", 2)
