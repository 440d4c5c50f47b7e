"""The collector policy: survivors frozen out of the cyclic collector's sight."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from orchestrator.expressions import compile_expression
from orchestrator.runtime.collector import CollectorPolicy


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()


def test_it_freezes_once_per_interval() -> None:
    policy = CollectorPolicy(interval_ms=1_000)
    before = gc.get_freeze_count()
    policy.tick(10_000)  # the first tick only starts the clock
    policy.tick(10_500)
    assert policy.freezes == 0
    survivor = [object() for _ in range(100)]
    policy.tick(11_000)
    assert policy.freezes == 1
    assert gc.get_freeze_count() >= before + len(survivor)
    policy.tick(11_999)
    assert policy.freezes == 1
    policy.tick(12_000)
    assert policy.freezes == 2


def test_zero_leaves_the_collector_alone() -> None:
    policy = CollectorPolicy(interval_ms=0)
    before = gc.get_freeze_count()
    for now in range(0, 100_000, 1_000):
        policy.tick(now)
    assert policy.freezes == 0
    assert gc.get_freeze_count() == before


def test_evaluating_an_expression_leaves_no_cyclic_garbage() -> None:
    """Frozen cycles are never collected: the hot path must make none (jmespath's
    own ``search`` made one interpreter cycle per evaluation)."""
    expression = compile_expression("items[?qty > `1`].sku")
    context = {"items": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 1}]}
    gc.collect()
    gc.disable()
    try:
        for _ in range(1_000):
            assert expression.evaluate(context) == ["a"]
        found = gc.collect()
    finally:
        gc.enable()
    assert found == 0
