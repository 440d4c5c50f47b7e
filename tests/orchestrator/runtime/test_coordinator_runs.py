"""A re-run of a request (after a rebalance) is not reached by the first run's timers.

White-box: drives the coordinator's record handling with a fake clock and a
producer that records instead of sending, so the rebalance happens at an exact time.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiokafka import ConsumerRecord, TopicPartition

from contracts import cloudevents
from orchestrator.builder import FlowBuilder
from orchestrator.catalog import catalog_from_data
from orchestrator.flow import compile_flow
from orchestrator.flow_files import FlowRegistry
from orchestrator.runtime.changelog import ChangelogWriter
from orchestrator.runtime.coordinator import SagaCoordinator
from orchestrator.runtime.publisher import Publisher
from orchestrator.saga import CallTimedOut
from orchestrator.settings import CoordinatorSettings


class RecordingProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    async def send(self, topic: str, **record: Any) -> asyncio.Future[None]:
        value = record["value"]
        self.sent.append((topic, orjson.loads(value) if value else None))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def request_record(offset: int, request_id: str) -> ConsumerRecord[bytes, bytes]:
    value = orjson.dumps({"request_id": request_id, "flow": "remote", "input": {"id": "x"}})
    headers = cloudevents.build_headers(
        event_id=request_id, event_type=cloudevents.TYPE_REQUEST, source="urn:test", time_ms=0
    )
    return ConsumerRecord(
        "req", 0, offset, 0, 0, request_id.encode(), value, None, 0, len(value), headers
    )


async def test_deadline_of_a_revoked_run_does_not_time_out_the_re_run() -> None:
    catalog = catalog_from_data(
        {"services": {"inv": {"kind": "kafka", "command_topic": "inv.commands"}}}, source="test"
    )
    builder = FlowBuilder("remote", timeout_ms=10_000)
    builder.step("call", service="inv", operation="op", input={"id": "input.id"})
    flow = compile_flow(builder.result({"a": "call"}).build(), catalog=catalog)
    now = [0]
    coordinator = SagaCoordinator(
        registry=FlowRegistry(flows={"remote": flow}, catalog=catalog),
        settings=CoordinatorSettings(request_topic="req"),
        clock=lambda: now[0],
    )
    producer = RecordingProducer()
    publisher = Publisher(producer)  # type: ignore[arg-type]
    coordinator._outbox.publisher = coordinator._dispatcher.publisher = publisher
    coordinator._changelog = ChangelogWriter(producer, "log")  # type: ignore[arg-type]
    writing = asyncio.create_task(coordinator._changelog.run())
    partition = TopicPartition("req", 0)
    coordinator._owned.add(0)

    coordinator._on_request(partition, request_record(0, "r-1"))  # deadline at t=10 s
    now[0] = 9_000
    await coordinator._partitions_revoked({partition})
    # Re-assigned (the restore itself is tested over the real broker), and run again.
    coordinator._owned.add(0)
    coordinator._on_request(partition, request_record(0, "r-1"))  # re-run: deadline t=19 s
    now[0] = 10_000
    # What the deadline loop does at t=10 s:
    for deadline in coordinator._dispatcher.deadlines.pop_due(now[0]):
        coordinator._deliver(
            deadline.request_id,
            CallTimedOut(call=deadline.call, attempt=deadline.attempt, at_ms=now[0]),
            run=deadline.run,
        )
    await asyncio.sleep(0)

    commands = [topic for topic, _ in producer.sent if topic == "inv.commands"]
    assert commands == ["inv.commands", "inv.commands"]
    assert coordinator.in_flight == 1, "the re-run is still waiting for its own deadline"
    writing.cancel()
    await coordinator.stop()
