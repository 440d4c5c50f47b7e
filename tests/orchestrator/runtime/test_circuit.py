"""The circuit breaker's state machine, on an injected clock."""

from __future__ import annotations

from contracts.catalog import CircuitPolicy
from orchestrator.runtime.circuit import CircuitBreaker, Permit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock, **policy: float) -> CircuitBreaker:
    defaults: dict[str, float] = {
        "failure_ratio": 0.5,
        "min_calls": 4,
        "window_ms": 10_000,
        "open_ms": 5_000,
        "half_open_calls": 1,
    }
    return CircuitBreaker(CircuitPolicy.model_validate(defaults | policy), clock=clock)


def call(circuit: CircuitBreaker, *, failed: bool) -> Permit:
    permit = circuit.admit()
    assert permit is not None, "the circuit refused a call it should admit"
    circuit.record(permit, failed=failed)
    return permit


def test_it_opens_only_once_the_window_holds_min_calls_at_the_failure_ratio() -> None:
    clock = Clock()
    circuit = breaker(clock)
    for _ in range(3):
        call(circuit, failed=True)
    assert circuit.state == "closed", "3 calls are fewer than min_calls"
    call(circuit, failed=True)
    assert circuit.state == "open"
    assert circuit.admit() is None
    assert circuit.rejecting()
    assert circuit.openings == 1


def test_a_ratio_below_the_threshold_keeps_it_closed() -> None:
    clock = Clock()
    circuit = breaker(clock, failure_ratio=0.5, min_calls=4)
    for n in range(40):
        call(circuit, failed=n % 3 == 2)  # a third fail, never two of the first four
    assert circuit.state == "closed"


def test_business_answers_count_as_successes_and_dilute_failures() -> None:
    clock = Clock()
    circuit = breaker(clock, failure_ratio=0.75, min_calls=4)
    call(circuit, failed=False)
    for _ in range(2):
        call(circuit, failed=True)
    call(circuit, failed=False)
    assert circuit.state == "closed", "2 of 4 failed: under 0.75"


def test_failures_older_than_the_window_are_forgotten() -> None:
    clock = Clock()
    circuit = breaker(clock, window_ms=1_000)
    for _ in range(3):
        call(circuit, failed=True)
    clock.now += 1.5  # past the window: those three have slid out
    call(circuit, failed=True)
    assert circuit.state == "closed"
    for _ in range(3):
        call(circuit, failed=True)
    assert circuit.state == "open"


def test_after_open_ms_one_probe_goes_through_and_a_success_closes_it() -> None:
    clock = Clock()
    circuit = breaker(clock, open_ms=5_000)
    for _ in range(4):
        call(circuit, failed=True)
    clock.now += 4.9
    assert circuit.admit() is None, "still cooling down"
    clock.now += 0.2
    assert not circuit.rejecting()
    probe = circuit.admit()
    assert probe is not None
    assert probe.probe
    assert circuit.state == "half_open"
    assert circuit.admit() is None, "one probe at a time (half_open_calls: 1)"
    circuit.record(probe, failed=False)
    assert circuit.state == "closed"
    # Closed with an empty window: old failures do not reopen it at once.
    call(circuit, failed=True)
    assert circuit.state == "closed"


def test_a_failed_probe_opens_it_for_another_open_ms() -> None:
    clock = Clock()
    circuit = breaker(clock, open_ms=1_000)
    for _ in range(4):
        call(circuit, failed=True)
    clock.now += 1.0
    probe = circuit.admit()
    assert probe is not None
    circuit.record(probe, failed=True)
    assert circuit.state == "open"
    assert circuit.openings == 2
    clock.now += 0.9
    assert circuit.admit() is None
    clock.now += 0.1
    assert circuit.admit() is not None


def test_it_closes_after_half_open_calls_successes_in_a_row() -> None:
    clock = Clock()
    circuit = breaker(clock, open_ms=1_000, half_open_calls=3)
    for _ in range(4):
        call(circuit, failed=True)
    clock.now += 1.0
    probes = [circuit.admit() for _ in range(4)]
    assert [p is not None for p in probes] == [True, True, True, False]
    for probe in probes[:2]:
        assert probe is not None
        circuit.record(probe, failed=False)
        assert circuit.state == "half_open"
    assert circuit.admit() is None, "passed and outstanding probes make three"
    assert probes[2] is not None
    circuit.record(probes[2], failed=False)
    assert circuit.state == "closed"


def test_a_cancelled_probe_gives_its_place_back() -> None:
    clock = Clock()
    circuit = breaker(clock, open_ms=1_000)
    for _ in range(4):
        call(circuit, failed=True)
    clock.now += 1.0
    probe = circuit.admit()
    assert probe is not None
    circuit.release(probe)
    assert circuit.state == "half_open"
    assert circuit.admit() is not None


def test_outcomes_of_calls_admitted_before_a_change_of_state_are_ignored() -> None:
    clock = Clock()
    circuit = breaker(clock, open_ms=1_000)
    early = circuit.admit()  # a slow call admitted while closed
    assert early is not None
    for _ in range(4):
        call(circuit, failed=True)
    clock.now += 1.0
    probe = circuit.admit()
    assert probe is not None
    circuit.record(early, failed=True)  # finishes while the probe runs: not a verdict
    assert circuit.state == "half_open"
    circuit.record(probe, failed=False)
    assert circuit.state == "closed"
