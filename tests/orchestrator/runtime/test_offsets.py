"""PartitionOffsets: commit only past the prefix of finished records."""

from __future__ import annotations

import pytest

from orchestrator.runtime.offsets import PartitionOffsets


def tracked(*offsets: int) -> PartitionOffsets:
    partition = PartitionOffsets()
    for offset in offsets:
        partition.track(offset)
    return partition


def test_nothing_tracked_has_nothing_to_commit() -> None:
    partition = PartitionOffsets()

    assert partition.committable() is None
    assert partition.in_progress == 0


@pytest.mark.parametrize(
    ("finished", "committable", "in_progress"),
    [
        ([], 10, 4),
        ([10], 11, 3),
        ([11], 10, 3),  # out of order: 10 still blocks
        ([11, 12], 10, 2),
        ([11, 12, 10], 13, 1),
        ([13, 12, 11, 10], 14, 0),
        ([10, 12], 11, 2),
    ],
)
def test_committable_is_the_first_unfinished_offset(
    finished: list[int], committable: int, in_progress: int
) -> None:
    partition = tracked(10, 11, 12, 13)
    for offset in finished:
        partition.finish(offset)

    assert partition.committable() == committable
    assert partition.in_progress == in_progress


def test_gaps_between_offsets_are_skipped() -> None:
    partition = tracked(5, 8, 20)

    partition.finish(5)
    assert partition.committable() == 8
    partition.finish(20)
    assert partition.committable() == 8
    partition.finish(8)
    assert partition.committable() == 21


def test_committable_is_none_until_it_moves() -> None:
    partition = tracked(0, 1, 2)

    assert partition.committable() == 0
    partition.committed(0)
    assert partition.committable() is None

    partition.finish(1)
    assert partition.committable() is None  # 0 still in progress

    partition.finish(0)
    assert partition.committable() == 2
    partition.committed(2)
    assert partition.committable() is None

    partition.finish(2)
    assert partition.committable() == 3
    partition.committed(3)
    assert partition.committable() is None

    partition.track(3)
    assert partition.committable() is None  # still 3: unchanged
    partition.finish(3)
    assert partition.committable() == 4


def test_an_offset_never_tracked_or_already_finished_changes_nothing() -> None:
    partition = tracked(10, 11, 12)
    partition.finish(10)
    partition.finish(10)  # twice
    partition.finish(5)  # never tracked here (e.g. from before a rebalance)
    partition.finish(99)

    assert partition.committable() == 11
    assert partition.in_progress == 2


def test_a_refetched_offset_is_tracked_once() -> None:
    partition = tracked(10, 11)
    partition.track(10)
    partition.finish(10)

    assert partition.committable() == 11
