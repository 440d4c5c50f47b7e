"""The result partition of a request id is the one Kafka's default partitioner picks."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner

from orchestrator.result_readback import partition_of


@pytest.mark.parametrize("partitions", [1, 2, 6, 12])
def test_partition_of_matches_the_producers_default_partitioner(partitions: int) -> None:
    keys = ["r-1", "order-o-7", "2b0c8f1e-9c1f-4d7e-8a51-1f0b6f0c9d3a", "ü", "x" * 200]
    chosen = [DefaultPartitioner()(key.encode(), list(range(partitions)), []) for key in keys]

    assert [partition_of(key, partitions) for key in keys] == chosen
