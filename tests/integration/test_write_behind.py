"""The changelog's write-behind, and admission after a pause, over the real broker.

A saga's start and events are staged and written together ``changelog_delay_ms``
after they are decided; a saga that ends first writes only its finished marker.
Either way its request offset is committed only once what it caused is durable.
"""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from handlers.demo.http_server import RouteResult
from orchestrator.runtime.coordinator import SagaCoordinator
from orchestrator.settings import CoordinatorSettings
from tests.integration.durability_io import (
    create_topics,
    publish_requests,
    started,
    wait_until_committed,
)
from tests.integration.kafka_io import end_offsets, read_topic
from tests.integration.saga_flows import (
    Hit,
    RecordingServer,
    answer_ok,
    http_step,
    kafka_service,
    saga_registry,
    shop_registry,
)

pytestmark = pytest.mark.kafka


def slow_ok(hit: Hit) -> RouteResult:
    time.sleep(1.5)
    return answer_ok(hit)


async def changelog_keys(settings: CoordinatorSettings, *, expect: int) -> list[tuple[str, bool]]:
    """Every changelog record as (key, is it a tombstone), in partition order."""
    records = await read_topic(
        settings.bootstrap_servers, settings.changelog_topic, expect=expect, settle_s=1.0
    )
    return [(record.key.decode(), record.value is None) for record in records]


async def test_a_saga_that_ends_within_the_delay_writes_only_its_finished_marker(
    settings: CoordinatorSettings,
) -> None:
    settings = settings.replace(changelog_delay_ms=5_000)
    ids = [f"quick-{n}" for n in range(5)]
    await create_topics(settings)
    with RecordingServer({"a": answer_ok, "b": answer_ok}) as server:
        registry = shop_registry(
            server,
            {"a": http_step("a"), "b": http_step("b", reads="a.id")},
            result={"b": "b.id"},
        )
        async with SagaCoordinator(registry=registry, settings=settings) as coordinator:
            await started(coordinator)
            await publish_requests(settings, [(rid, {"id": rid}) for rid in ids])
            results = await read_topic(
                settings.bootstrap_servers, settings.result_topic, expect=len(ids)
            )
            # Committed without any start or event being written: the markers held them.
            committed = await wait_until_committed(settings)
            keys = await changelog_keys(settings, expect=1 + len(ids))

    assert sorted(orjson.loads(r.value)["request_id"] for r in results) == sorted(ids)
    assert sum(committed.values()) == len(ids)
    written = [key for key, _ in keys if not key.startswith("f:")]
    assert sorted(written) == sorted(f"s:{rid}" for rid in ids), keys
    assert not any(tombstone for _, tombstone in keys), "nothing to tombstone: nothing written"


async def test_a_saga_still_running_after_the_delay_is_in_the_changelog(
    settings: CoordinatorSettings,
) -> None:
    settings = settings.replace(changelog_delay_ms=20)
    await create_topics(settings)
    with RecordingServer({"a": answer_ok, "b": slow_ok}) as server:
        registry = shop_registry(
            server,
            {"a": http_step("a"), "b": http_step("b", reads="a.id", timeout_ms=10_000)},
            result={"b": "b.id"},
        )
        async with SagaCoordinator(registry=registry, settings=settings) as coordinator:
            await started(coordinator)
            await publish_requests(settings, [("slow-1", {"id": "slow-1"})])
            # While b is still out: the start and a's reply are durable, and so the
            # request's offset is committed before the saga ends.
            during = await changelog_keys(settings, expect=3)
            committed = await wait_until_committed(settings)
            assert coordinator.in_flight == 1
            await read_topic(settings.bootstrap_servers, settings.result_topic, expect=1)
            after = await changelog_keys(settings, expect=5)

    assert [key for key, _ in during if not key.startswith("f:")] == ["s:slow-1", "e:slow-1/1"]
    assert sum(committed.values()) == 1
    # b's reply ended the saga before it was written: only what was written is
    # tombstoned, and the finished marker replaces the start.
    assert after[len(during) :] == [("e:slow-1/1", True), ("s:slow-1", False)], after


async def test_no_delay_writes_every_event_as_it_happens(settings: CoordinatorSettings) -> None:
    settings = settings.replace(changelog_delay_ms=0)
    await create_topics(settings)
    with RecordingServer({"a": answer_ok, "b": answer_ok}) as server:
        registry = shop_registry(
            server,
            {"a": http_step("a"), "b": http_step("b", reads="a.id")},
            result={"b": "b.id"},
        )
        async with SagaCoordinator(registry=registry, settings=settings) as coordinator:
            await started(coordinator)
            await publish_requests(settings, [("eager-1", {"id": "eager-1"})])
            await read_topic(settings.bootstrap_servers, settings.result_topic, expect=1)
            keys = await changelog_keys(settings, expect=7)

    assert [key for key, _ in keys if not key.startswith("f:")] == [
        "s:eager-1",
        "e:eager-1/1",
        "e:eager-1/2",
        "e:eager-1/1",
        "e:eager-1/2",
        "s:eager-1",
    ]


async def test_requests_flow_again_after_a_pause_for_calls_while_many_sagas_wait(
    settings: CoordinatorSettings, topic_prefix: str
) -> None:
    """A pause because calls were at their limit ends once calls are, even though the
    sagas (parked on a step nobody answers) stay above half their room."""
    settings = settings.replace(max_in_flight=100, max_calls_in_flight=1)
    await create_topics(settings)
    registry = saga_registry(
        {"parked": kafka_service(f"{topic_prefix}.parked")},
        {"wait": {"service": "parked", "operation": "wait", "input": {"id": "input.id"}}},
        defaults={"timeout_ms": 120_000},
    )
    ids = [f"parked-{n}" for n in range(80)]
    async with SagaCoordinator(registry=registry, settings=settings) as coordinator:
        await started(coordinator)
        await publish_requests(settings, [(rid, {"id": rid}) for rid in ids])
        deadline = time.monotonic() + 60
        while coordinator.in_flight < len(ids) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        in_flight = coordinator.in_flight
    assert in_flight == len(ids), f"only {in_flight} of {len(ids)} requests were admitted"
    commands = await end_offsets(settings.bootstrap_servers, f"{topic_prefix}.parked")
    assert sum(commands.values()) == len(ids)
