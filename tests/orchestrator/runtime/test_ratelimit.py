"""The rate limiter (GCRA token bucket), on an injected clock."""

from __future__ import annotations

import pytest

from contracts.catalog import RateLimitPolicy
from orchestrator.runtime.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def limiter(clock: Clock, **policy: float) -> RateLimiter:
    return RateLimiter(RateLimitPolicy.model_validate(policy), clock=clock)


def test_a_burst_goes_at_once_and_the_rest_wait_one_interval_each() -> None:
    clock = Clock()
    limit = limiter(clock, per_second=10, burst=3, max_wait_ms=10_000)
    waits = [limit.reserve() for _ in range(6)]
    assert waits == pytest.approx([0.0, 0.0, 0.0, 0.1, 0.2, 0.3])


def test_tokens_come_back_at_the_rate_up_to_the_burst() -> None:
    clock = Clock()
    limit = limiter(clock, per_second=10, burst=3, max_wait_ms=10_000)
    for _ in range(3):
        assert limit.reserve() == 0.0
    clock.now += 0.1  # one token back
    assert limit.reserve() == 0.0
    assert limit.reserve() == pytest.approx(0.1)
    clock.now += 60  # a long pause refills to the burst, never beyond
    assert [limit.reserve() for _ in range(4)] == pytest.approx([0, 0, 0, 0.1])


def test_a_call_that_would_wait_past_max_wait_is_refused_and_reserves_nothing() -> None:
    clock = Clock()
    limit = limiter(clock, per_second=10, burst=1, max_wait_ms=250)
    assert [limit.reserve() for _ in range(3)] == pytest.approx([0.0, 0.1, 0.2])
    assert limit.reserve() is None  # would wait 0.3 s
    assert limit.wait_needed() == pytest.approx(0.3)
    assert limit.reserve() is None, "a refusal reserved no turn"
    clock.now += 0.1
    assert limit.reserve() == pytest.approx(0.2)


def test_max_wait_zero_never_waits() -> None:
    clock = Clock()
    limit = limiter(clock, per_second=2, burst=2, max_wait_ms=0)
    assert [limit.reserve() for _ in range(3)] == [0.0, 0.0, None]


@pytest.mark.parametrize("seconds", [1.0, 2.5, 10.0])
def test_no_span_sees_more_than_burst_plus_rate_times_span(seconds: float) -> None:
    clock = Clock()
    limit = limiter(clock, per_second=20, burst=5, max_wait_ms=100_000)
    starts = []
    for _ in range(400):
        wait = limit.reserve()
        assert wait is not None
        starts.append(clock.now + wait)
    for first in starts:
        inside = sum(1 for start in starts if first <= start < first + seconds)
        assert inside <= 5 + 20 * seconds + 1e-9
