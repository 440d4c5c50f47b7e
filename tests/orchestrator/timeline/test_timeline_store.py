"""The timeline's index of recent sagas: results and changelog starts in, filtered
summaries and details out, bounded."""

from __future__ import annotations

from typing import Any

from orchestrator.timeline.store import MAX_LIVE_EVENTS, TimelineStore


def result(request_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "schema_version": 3,
        "request_id": request_id,
        "flow": "orders",
        "flow_version": 1,
        "status": "completed",
        "complete": True,
        "data": {"secret": "business data"},
        "steps": [],
        "errors": [],
        "started_at_ms": 1_000,
        "finished_at_ms": 1_040,
        **fields,
    }


def test_a_result_becomes_a_summary_and_a_detail_without_its_data() -> None:
    store = TimelineStore(max_sagas=10)
    store.add_result(result("r-1"))

    assert store.sagas() == [
        {
            "request_id": "r-1",
            "flow": "orders",
            "status": "completed",
            "complete": True,
            "started_at_ms": 1_000,
            "finished_at_ms": 1_040,
            "duration_ms": 40,
        }
    ]
    detail = store.detail("r-1")
    assert detail is not None
    assert "secret" not in str(detail)
    assert (detail["flow_version"], detail["steps"], detail["errors"]) == (1, [], [])
    assert store.detail("r-2") is None


def test_filters_narrow_the_list_latest_first() -> None:
    store = TimelineStore(max_sagas=10)
    store.add_result(result("Order-A", started_at_ms=1))
    store.add_result(result("order-b", started_at_ms=3, status="failed", complete=False))
    store.add_result(result("pay-c", started_at_ms=2, flow="payments", complete=False))
    store.add_start("order-d", flow="orders", started_ms=4)

    def ids(**filters: Any) -> list[str]:
        return [saga["request_id"] for saga in store.sagas(**filters)]

    assert ids() == ["order-d", "order-b", "pay-c", "Order-A"]
    assert ids(flow="payments") == ["pay-c"]
    assert ids(status="failed") == ["order-b"]
    assert ids(status="partial") == ["pay-c"]
    assert ids(status="running") == ["order-d"]
    assert ids(query="ORDER") == ["order-d", "order-b", "Order-A"]
    assert ids(flow="orders", query="a") == ["Order-A"]
    assert ids(limit=2) == ["order-d", "order-b"]
    assert store.flows() == ["orders", "payments"]


def test_a_start_never_hides_a_result_and_a_result_ends_a_running_saga() -> None:
    store = TimelineStore(max_sagas=10)
    store.add_result(result("done"))
    store.add_start("done", flow="orders", started_ms=1_000)
    store.add_start("late", flow="orders", started_ms=2_000)
    store.add_event("late", {"k": "reply", "call": "a", "attempt": 1, "at": 2_015, "status": "ok"})

    assert [s["status"] for s in store.sagas()] == ["running", "completed"]
    live = store.detail("late")
    assert live is not None
    assert live["events"] == [
        {"kind": "reply", "call": "a", "attempt": 1, "status": "ok", "code": None, "at_ms": 15}
    ]

    store.add_result(result("late", started_at_ms=2_000, finished_at_ms=2_030))
    assert [s["status"] for s in store.sagas()] == ["completed", "completed"]


def test_running_sagas_keep_a_bounded_list_of_events() -> None:
    store = TimelineStore(max_sagas=10)
    store.add_start("r", flow="orders", started_ms=0)
    for n in range(MAX_LIVE_EVENTS + 5):
        store.add_event("r", {"k": "timeout", "call": "a", "attempt": n, "at": n})

    detail = store.detail("r")
    assert detail is not None
    assert (len(detail["events"]), detail["event_count"]) == (MAX_LIVE_EVENTS, MAX_LIVE_EVENTS + 5)


def test_the_oldest_saga_drops_out_past_the_bound() -> None:
    store = TimelineStore(max_sagas=2)
    for n in range(3):
        store.add_result(result(f"r-{n}", started_at_ms=n))

    assert len(store) == 2
    assert [s["request_id"] for s in store.sagas()] == ["r-2", "r-1"]


def test_records_that_are_not_results_are_ignored() -> None:
    store = TimelineStore(max_sagas=2)
    store.add_result({"request_id": 7})
    store.add_result({"request_id": "x"})

    assert len(store) == 0


def test_a_result_older_than_version_3_gets_empty_timelines() -> None:
    store = TimelineStore(max_sagas=10)
    v2_step = {"step": "charge", "status": "succeeded", "calls": 1, "failed_calls": 0}
    store.add_result(result("v2", schema_version=2, steps=[v2_step, "not a step"]))

    detail = store.detail("v2")
    assert detail is not None
    assert detail["steps"] == [
        {
            **v2_step,
            "attempts": 0,
            "started_ms": None,
            "finished_ms": None,
            "call_timeline": [],
        }
    ]


def test_the_most_recently_started_sagas_stay_whatever_order_they_are_read_in() -> None:
    store = TimelineStore(max_sagas=2)
    # Caught up partition by partition: the newest saga is read first.
    store.add_result(result("new", started_at_ms=30))
    store.add_result(result("old", started_at_ms=10))
    store.add_start("mid", flow="orders", started_ms=20)
    store.add_result(result("oldest", started_at_ms=5))

    assert [s["request_id"] for s in store.sagas()] == ["new", "mid"]
    # Its result replaces the running entry and keeps its place.
    store.add_result(result("mid", started_at_ms=20, finished_at_ms=25))
    store.add_start("older", flow="orders", started_ms=15)
    assert [(s["request_id"], s["status"]) for s in store.sagas()] == [
        ("new", "completed"),
        ("mid", "completed"),
    ]


def test_a_finished_marker_ends_a_running_saga_and_nothing_resurrects_an_ended_one() -> None:
    store = TimelineStore(max_sagas=2)
    store.add_start("stuck", flow="orders", started_ms=1)
    store.add_result(result("done", started_at_ms=2))
    store.end("stuck")
    store.end("done")

    assert [(s["request_id"], s["status"]) for s in store.sagas()] == [("done", "completed")]
    # Its start record, read again (another partition, a later catch-up): still ended.
    store.add_start("stuck", flow="orders", started_ms=1)
    assert [s["request_id"] for s in store.sagas()] == ["done"]

    # A result evicted by newer ones is not brought back by its start record.
    store.add_result(result("b", started_at_ms=3))
    store.add_result(result("c", started_at_ms=4))
    store.add_start("done", flow="orders", started_ms=2)
    assert [s["request_id"] for s in store.sagas()] == ["c", "b"]
    store.add_start("live", flow="orders", started_ms=5)
    assert [s["request_id"] for s in store.sagas()] == ["live", "c"]


def test_many_replacements_keep_the_store_bounded() -> None:
    store = TimelineStore(max_sagas=3)
    for n in range(200):
        store.add_start(f"r-{n}", flow="orders", started_ms=n)
        store.add_result(result(f"r-{n}", started_at_ms=n))

    assert [s["request_id"] for s in store.sagas()] == ["r-199", "r-198", "r-197"]
    assert store.held_records() <= 4 * 3 + 16
