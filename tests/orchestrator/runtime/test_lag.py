"""Consumer lag: measured without awaiting, only for owned partitions, and a
rebalance landing in the middle (aiokafka swapping the assignment) costs nothing."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition
from prometheus_client import generate_latest

from orchestrator.catalog import catalog_from_data
from orchestrator.flow_files import FlowRegistry
from orchestrator.runtime.coordinator import SagaCoordinator
from orchestrator.runtime.lag import measure_lag
from orchestrator.runtime.metrics import CoordinatorMetrics
from orchestrator.settings import CoordinatorSettings

REQ = "req"
REP = "rep"


class RevokingConsumer:
    """Looks like aiokafka's consumer where lag needs it; asking for the high
    watermark of ``revoke_on`` hands every partition in ``revoked`` back first (a
    rebalance in the middle), and then, like aiokafka, asserts on a revoked one."""

    def __init__(
        self,
        positions: dict[TopicPartition, int | None],
        highwaters: dict[TopicPartition, int | None],
        *,
        revoke_on: TopicPartition | None = None,
        revoked: frozenset[TopicPartition] = frozenset(),
    ) -> None:
        self._assigned = set(positions)
        self._positions = positions
        self._highwaters = highwaters
        self._revoke_on = revoke_on
        self._revoked = revoked
        self._subscription = SimpleNamespace(
            subscription=SimpleNamespace(assignment=SimpleNamespace(state_value=self._state))
        )

    def assignment(self) -> set[TopicPartition]:
        return set(self._assigned)

    def highwater(self, partition: TopicPartition) -> int | None:
        if partition == self._revoke_on:
            self._assigned -= self._revoked
        assert partition in self._assigned, "Partition is not assigned"
        return self._highwaters.get(partition)

    def _state(self, partition: TopicPartition) -> Any:
        if partition not in self._assigned:
            return None
        position = self._positions.get(partition)
        return SimpleNamespace(has_valid_position=position is not None, position=position)


def tp(topic: str, number: int) -> TopicPartition:
    return TopicPartition(topic, number)


def test_lag_is_highwater_minus_position_and_unknowns_are_skipped() -> None:
    consumer = RevokingConsumer(
        {tp(REQ, 0): 7, tp(REQ, 1): None, tp(REQ, 2): 3},
        {tp(REQ, 0): 10, tp(REQ, 1): 4, tp(REQ, 2): None},
    )
    lags = measure_lag(consumer, [tp(REQ, 0), tp(REQ, 1), tp(REQ, 2), tp(REQ, 9)])
    assert lags == {(REQ, 0): 3}  # 1: position being reset, 2: nothing fetched, 9: not ours


def test_a_revocation_during_the_measurement_raises_nothing() -> None:
    consumer = RevokingConsumer(
        {tp(REQ, 0): 1, tp(REQ, 1): 1, tp(REP, 0): 2},
        {tp(REQ, 0): 5, tp(REQ, 1): 5, tp(REP, 0): 2},
        revoke_on=tp(REQ, 0),
        revoked=frozenset({tp(REQ, 0), tp(REQ, 1)}),
    )
    lags = measure_lag(consumer, [tp(REQ, 0), tp(REQ, 1), tp(REP, 0)])
    assert lags == {(REP, 0): 0}


def coordinator() -> SagaCoordinator:
    catalog = catalog_from_data({"services": {}}, source="test")
    return SagaCoordinator(
        registry=FlowRegistry(flows={}, catalog=catalog),
        settings=CoordinatorSettings(request_topic=REQ, reply_topic=REP),
    )


def lag_series(metrics: CoordinatorMetrics) -> dict[tuple[str, str], float]:
    return {
        (sample.labels["topic"], sample.labels["partition"]): sample.value
        for family in metrics.registry.collect()
        if family.name == "orchestrator_consumer_lag"
        for sample in family.samples
    }


async def test_the_coordinator_survives_a_revocation_mid_measurement() -> None:
    c = coordinator()
    try:
        c._owned = {0, 1}
        consumer = RevokingConsumer(
            {tp(REQ, 0): 1, tp(REQ, 1): 1, tp(REP, 0): 0, tp(REP, 1): 0},
            {tp(REQ, 0): 4, tp(REQ, 1): 6, tp(REP, 0): 2, tp(REP, 1): 0},
            revoke_on=tp(REQ, 0),
            revoked=frozenset({tp(REQ, 1), tp(REP, 1)}),
        )
        c._measure_lag(consumer)  # type: ignore[arg-type]  # a stub consumer
        assert lag_series(c.metrics) == {(REQ, "0"): 3.0, (REP, "0"): 2.0}
        # Even a consumer that fails outright does not end the housekeeping loop.
        c._measure_lag(None)  # type: ignore[arg-type]
    finally:
        await c._http.aclose()


async def test_lag_is_reported_for_owned_partitions_only_and_lost_ones_disappear() -> None:
    c = coordinator()
    try:
        every = {tp(t, n): 0 for t in (REQ, REP) for n in (0, 1)}
        consumer = RevokingConsumer(every, dict.fromkeys(every, 5))
        c._owned = {0}  # partition 1 assigned but not restored yet: not ours to report
        c._measure_lag(consumer)  # type: ignore[arg-type]
        assert lag_series(c.metrics) == {(REQ, "0"): 5.0, (REP, "0"): 5.0}
        c._owned = {0, 1}
        c._measure_lag(consumer)  # type: ignore[arg-type]
        assert set(lag_series(c.metrics)) == {(t, str(n)) for t in (REQ, REP) for n in (0, 1)}
        # Partition 1 is lost; the old assignment lingers in the consumer (as it
        # does in aiokafka until the rebalance completes): its series still goes.
        c._owned = {0}
        c.metrics.forget_partition(REQ, 1)
        c._measure_lag(consumer)  # type: ignore[arg-type]
        assert lag_series(c.metrics) == {(REQ, "0"): 5.0, (REP, "0"): 5.0}
        c._owned = set()
        c._measure_lag(consumer)  # type: ignore[arg-type]
        assert lag_series(c.metrics) == {}
        assert "orchestrator_consumer_lag{" not in generate_latest(c.metrics.registry).decode()
    finally:
        await c._http.aclose()
