"""The chaos run's oracle, fed synthetic records: it finds a loss, a duplicate result
and a compensation due and not run, and passes a clean run."""

from __future__ import annotations

from typing import Any

from bench.chaos.oracle import Effect, SentRequest, judge

SENT = [
    SentRequest("r-1", "order-details", "completed"),
    SentRequest("r-2", "place-order", "completed"),
    SentRequest("r-3", "place-order", "failed", published=2),
]


def result(request_id: str, status: str) -> dict[str, Any]:
    return {"request_id": request_id, "status": status}


CLEAN_RESULTS = [result("r-1", "completed"), result("r-2", "completed"), result("r-3", "failed")]
# r-2 went through; r-3's card was charged, then the shipment failed: both undone.
CLEAN_EFFECTS = [
    Effect("inventory", "reserve", "r-2:reserve", "reserved", "res-2"),
    Effect("inventory", "reserve", "r-3:reserve", "reserved", "res-3"),
    Effect("inventory", "reserve", "r-3:reserve", "repeat", "res-3"),
    Effect("inventory", "release", "r-3:reserve:compensate", "released", "res-3"),
    Effect("payments", "charge", "r-2:charge", "charged", "ch-2"),
    Effect("payments", "charge", "r-3:charge", "charged", "ch-3"),
    Effect("payments", "refund", "r-3:charge:compensate", "refunded", "ch-3"),
    Effect("shipments", "create", "r-2:ship", "booked", "TRK-2"),
    Effect("shipments", "create", "r-3:ship", "unavailable"),
]


def test_a_clean_run_passes_and_counts_what_happened() -> None:
    commands = [{"correlation_id": "r-2:reserve:1"}, {"correlation_id": "r-2:reserve:1"}]
    verdict = judge(
        SENT,
        results=CLEAN_RESULTS,
        dead_letters=[{"dlq_code": "request.invalid"}],
        commands=commands,
        effects=CLEAN_EFFECTS,
    )

    assert verdict.ok, verdict.failures
    assert (verdict.requests, verdict.published, verdict.result_records) == (3, 4, 3)
    assert verdict.statuses == {"completed": 2, "failed": 1}
    assert (verdict.compensations_due, verdict.compensations_run) == (2, 2)
    assert verdict.keys_run_more_than_once == 1  # r-3:reserve, a re-issue with the same key
    assert verdict.max_executions_per_key == 2
    assert verdict.reissued_commands == 1
    assert verdict.dead_letters == {"request.invalid": 1}
    assert verdict.table().endswith("VERDICT: PASS")


def test_a_request_without_a_result_is_lost() -> None:
    verdict = judge(SENT, results=CLEAN_RESULTS[:2], effects=CLEAN_EFFECTS)

    assert verdict.lost == ("r-3",)
    assert not verdict.ok
    assert "1 lost: r-3" in verdict.failures[0]


def test_a_second_result_record_is_a_duplicate() -> None:
    results = [*CLEAN_RESULTS, result("r-1", "completed"), result("r-1", "completed")]
    verdict = judge(SENT, results=results, effects=CLEAN_EFFECTS)

    assert verdict.duplicated == ("r-1",)
    assert verdict.duplicate_result_records == 2
    assert not verdict.ok
    assert "VERDICT: FAIL" in verdict.table()


def test_a_charge_not_refunded_after_the_saga_failed_is_a_missed_compensation() -> None:
    effects = [e for e in CLEAN_EFFECTS if e.operation != "refund"]
    verdict = judge(SENT, results=CLEAN_RESULTS, effects=effects)

    assert verdict.missed_compensations == ("r-3: payments ch-3 still standing",)
    assert (verdict.compensations_due, verdict.compensations_run) == (2, 1)
    assert not verdict.ok


def test_a_reservation_made_again_after_its_release_is_due_again() -> None:
    # A second run of r-3 reserved again after the first run had released: held at the end.
    effects = [*CLEAN_EFFECTS, Effect("inventory", "reserve", "r-3:reserve", "reserved", "res-3")]
    verdict = judge(SENT, results=CLEAN_RESULTS, effects=effects)

    assert verdict.missed_compensations == ("r-3: inventory res-3 still standing",)


def test_a_lost_saga_that_reserved_owes_its_compensation_too() -> None:
    verdict = judge(SENT, results=CLEAN_RESULTS[:1], effects=CLEAN_EFFECTS)

    assert verdict.lost == ("r-2", "r-3")
    assert "r-2: inventory res-2 still standing" in verdict.missed_compensations


def test_undoing_a_completed_order_is_reported_and_results_of_strangers_counted() -> None:
    effects = [*CLEAN_EFFECTS, Effect("payments", "refund", "r-2:x", "refunded", "ch-2")]
    timed_out = {**result("r-1", "failed"), "errors": [{"code": "step.timeout"}]}
    results = [*CLEAN_RESULTS, result("stranger", "completed"), timed_out]
    verdict = judge(SENT, results=results, effects=effects)

    assert verdict.undone_though_completed == ("r-2: payments ch-2",)
    assert verdict.unknown_results == 1
    assert verdict.unexpected_status == ("r-1",)
    assert verdict.unexpected_codes == {"step.timeout": 1}
