"""Consumer lag, measured without awaiting: a rebalance cannot land in the middle.

aiokafka's ``consumer.position()`` is a coroutine (it waits for an offset reset),
and ``consumer.highwater()`` asserts that the partition is assigned. Awaiting per
partition let a rebalance swap the assignment between the two, and the assertion
ended the housekeeping loop. Here both numbers are read in one synchronous pass:
the high watermark from the last fetch and the position the consumer already
knows; a partition not assigned now, or without a valid position yet (being
reset), is skipped and measured next time.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiokafka import TopicPartition


def known_position(consumer: Any, partition: TopicPartition) -> int | None:
    """The consumer's position on ``partition`` if it has a valid one, without waiting.

    aiokafka has no public synchronous accessor; this reads the same state that
    ``consumer.position()`` returns once no reset is pending.
    """
    assignment = consumer._subscription.subscription.assignment
    if assignment is None:
        return None
    state = assignment.state_value(partition)
    if state is None or not state.has_valid_position:
        return None
    return int(state.position)


def measure_lag(consumer: Any, partitions: Iterable[TopicPartition]) -> dict[tuple[str, int], int]:
    """Records behind the high watermark, per partition of ``partitions`` that the
    consumer has now and has fetched from; never raises, never awaits."""
    lags: dict[tuple[str, int], int] = {}
    for partition in partitions:
        try:
            if partition not in consumer.assignment():
                continue  # revoked, or not ours yet
            highwater = consumer.highwater(partition)
            position = known_position(consumer, partition)
        except Exception:  # a metric is never worth a loop: measured next time
            continue
        if highwater is None or position is None:
            continue  # nothing fetched yet, or the position is being reset
        lags[(partition.topic, partition.partition)] = max(int(highwater) - position, 0)
    return lags
