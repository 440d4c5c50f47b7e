"""The worker's command pool: a concurrency limit, and offsets committed in order."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from handlers.worker_pool import CommandPool


class RecordingConsumer(AIOKafkaConsumer):  # type: ignore[misc]  # aiokafka is untyped
    """Records commits; nothing else of the consumer is used."""

    def __init__(self) -> None:  # no connection
        self.commits: list[dict[TopicPartition, int]] = []

    async def commit(self, offsets: Any = None) -> None:
        self.commits.append(dict(offsets))


TP = TopicPartition("cmds", 0)


async def test_offsets_are_committed_in_order_whatever_order_commands_finish() -> None:
    pool = CommandPool(limit=3)
    consumer = RecordingConsumer()
    gates = {offset: asyncio.Event() for offset in range(3)}

    def work(offset: int) -> Any:
        async def run() -> None:
            await gates[offset].wait()

        return run

    for offset in range(3):
        await pool.submit(work(offset), consumer=consumer, topic="cmds", partition=0, offset=offset)
    assert pool.in_flight == 3
    gates[2].set()
    gates[1].set()
    await asyncio.sleep(0.01)
    assert consumer.commits == [], "offset 0 still runs: nothing may be committed"
    gates[0].set()
    await asyncio.sleep(0.01)
    assert consumer.commits[-1] == {TP: 3}
    assert [commit[TP] for commit in consumer.commits] == sorted(
        commit[TP] for commit in consumer.commits
    ), "never backwards"


async def test_the_limit_holds_back_the_fetch_loop() -> None:
    pool = CommandPool(limit=2)
    consumer = RecordingConsumer()
    release = asyncio.Event()

    async def slow() -> None:
        await release.wait()

    await pool.submit(slow, consumer=consumer, topic="cmds", partition=0, offset=0)
    await pool.submit(slow, consumer=consumer, topic="cmds", partition=0, offset=1)
    third = asyncio.create_task(
        pool.submit(slow, consumer=consumer, topic="cmds", partition=0, offset=2)
    )
    await asyncio.sleep(0.01)
    assert (pool.in_flight, third.done()) == (2, False)
    release.set()
    await third
    await pool.drain(1.0)
    assert consumer.commits[-1] == {TP: 3}


async def test_an_offset_in_flight_is_not_run_twice_and_a_reread_starts_afresh() -> None:
    pool = CommandPool(limit=4)
    consumer = RecordingConsumer()
    runs: list[int] = []
    release = asyncio.Event()

    def work(offset: int) -> Any:
        async def run() -> None:
            runs.append(offset)
            await release.wait()

        return run

    await pool.submit(work(5), consumer=consumer, topic="cmds", partition=0, offset=5)
    await pool.submit(work(5), consumer=consumer, topic="cmds", partition=0, offset=5)
    await asyncio.sleep(0.01)
    assert runs == [5]
    release.set()
    await asyncio.sleep(0.01)
    assert consumer.commits == [{TP: 6}]
    # Read again from an older commit (a re-assignment): booked afresh, run again.
    await pool.submit(work(4), consumer=consumer, topic="cmds", partition=0, offset=4)
    await asyncio.sleep(0.01)
    assert runs == [5, 4]
    assert consumer.commits[-1] == {TP: 5}


async def test_a_stop_starts_nothing_new_and_cancels_what_outlives_the_grace() -> None:
    pool = CommandPool(limit=2)
    consumer = RecordingConsumer()
    never = asyncio.Event()

    async def hung() -> None:
        await never.wait()

    await pool.submit(hung, consumer=consumer, topic="cmds", partition=0, offset=0)
    await pool.drain(0.05)
    await pool.submit(hung, consumer=consumer, topic="cmds", partition=0, offset=1)

    assert pool.in_flight == 0
    assert consumer.commits == [], "a cancelled command is not committed: it comes again"
