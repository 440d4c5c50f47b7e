"""Durability over the real broker: one result per request id across restarts,
rebalances, bad records and coordinator failures; committed offsets that never
let a request be answered twice; calls that do not outlive their saga."""

from __future__ import annotations

import asyncio
import collections
import time
from http import HTTPStatus
from typing import Any

import pytest

from orchestrator.client import OrchestratorClient
from orchestrator.runtime.coordinator import SagaCoordinator
from orchestrator.settings import CoordinatorSettings
from tests.integration.durability_io import (
    WAIT_S,
    publish_record,
    publish_requests,
    request_headers,
    request_value,
    results_by_id,
    started,
    wait_until_committed,
)
from tests.integration.kafka_io import read_topic
from tests.integration.saga_flows import (
    Hit,
    RecordingServer,
    answer_status,
    http_step,
    shop_registry,
)

pytestmark = pytest.mark.kafka


# -- 1. duplicates after a graceful restart ------------------------------------------


async def test_duplicates_after_a_restart_and_across_instances_get_no_second_result(
    settings: CoordinatorSettings,
) -> None:
    requests = [(f"restart-dup-{n}", {"id": str(n)}) for n in range(5)]
    ids = {request_id for request_id, _ in requests}
    with RecordingServer() as server:
        registry = shop_registry(server, {"a": http_step("a")})
        async with (
            SagaCoordinator(registry=registry, settings=settings) as first,
            OrchestratorClient(settings) as client,
        ):
            await started(first)
            await publish_requests(settings, requests)
            answered = [await client.wait_for(rid, timeout_s=WAIT_S) for rid, _ in requests]
        assert [result["status"] for result in answered] == ["completed"] * 5

        # A fresh instance, same settings: the finished markers in the changelog
        # recognise the same requests sent again.
        async with SagaCoordinator(registry=registry, settings=settings) as second:
            await started(second)
            await publish_requests(settings, requests)
            await wait_until_committed(settings)
            after_restart = await results_by_id(settings, expect=5)

            # A third instance joins the group: the partitions are split between
            # them, each restores its markers, and duplicates are still dropped.
            async with SagaCoordinator(registry=registry, settings=settings) as third:
                await started(third)
                await publish_requests(settings, requests)
                await wait_until_committed(settings)
                after_rebalance = await results_by_id(settings, expect=5)
                owners = (len(second._owned), len(third._owned))

    assert after_restart == collections.Counter(dict.fromkeys(ids, 1))
    assert after_rebalance == collections.Counter(dict.fromkeys(ids, 1))
    assert owners == (1, 1), "both instances of the group must own a partition"
    assert len(server.hits) == 5, "a duplicate must not call the downstream again"


# -- 2. revocation while results are due ----------------------------------------------


async def test_revocation_while_sagas_are_in_flight_gives_one_result_each(
    settings: CoordinatorSettings,
) -> None:
    def slow(hit: Hit) -> tuple[int, Any]:
        time.sleep(1.5)
        return HTTPStatus.OK, {"id": f"a-{hit.path.rsplit('/', 1)[-1]}"}

    count = 50
    ids = [f"moving-{n}" for n in range(count)]
    with RecordingServer({"a": slow}) as server:
        registry = shop_registry(server, {"a": http_step("a", timeout_ms=15_000)})
        async with SagaCoordinator(registry=registry, settings=settings) as first:
            await started(first)

            async def trickle() -> None:
                # One request every 100 ms over 5 s: whenever the rebalance lands,
                # sagas are waiting on the downstream and results are due.
                for request_id in ids:
                    await publish_requests(settings, [(request_id, {"id": request_id})])
                    await asyncio.sleep(0.1)

            publishing = asyncio.create_task(trickle())
            await asyncio.sleep(1.0)
            async with SagaCoordinator(registry=registry, settings=settings) as second:
                await started(second)
                await publishing
                results = await results_by_id(settings, expect=count, settle_s=2.0)
                restored = first.restored_sagas + second.restored_sagas

    assert results == collections.Counter(dict.fromkeys(ids, 1)), "exactly one result each"
    assert restored > 0, "the rebalance should have caught sagas in flight (test setup)"
    per_key = collections.Counter(hit.key for hit in server.of("a"))
    assert set(per_key) == {f"{request_id}:a" for request_id in ids}
    assert max(per_key.values()) <= 2, f"a call was made more than twice: {per_key}"


# -- 5. a huge invalid input, then a valid request on the same partition -------------


async def test_huge_invalid_input_is_answered_dead_lettered_and_committed(
    settings: CoordinatorSettings,
) -> None:
    schema = {
        "type": "object",
        "properties": {"id": {"type": "string", "maxLength": 100}},
        "required": ["id"],
    }
    huge_value = request_value("huge-1", {"id": "x" * 600_000})
    assert len(huge_value) > 600_000
    with RecordingServer() as server:
        registry = shop_registry(server, {"a": http_step("a")}, input_schema=schema)
        async with (
            SagaCoordinator(registry=registry, settings=settings) as coordinator,
            OrchestratorClient(settings) as client,
        ):
            await started(coordinator)
            await publish_record(
                settings,
                value=huge_value,
                key=b"huge-1",
                headers=request_headers("huge-1"),
                partition=0,
            )
            await publish_requests(settings, [("small-1", {"id": "s"})], partition=0)
            huge = await client.wait_for("huge-1", timeout_s=WAIT_S)
            small = await client.wait_for("small-1", timeout_s=WAIT_S)
            [dead] = await read_topic(
                settings.bootstrap_servers, settings.dead_letter_topic, expect=1, timeout_s=WAIT_S
            )
            committed = await wait_until_committed(settings)

        # A restart must not see either request again: their offsets were committed.
        async with SagaCoordinator(registry=registry, settings=settings) as restarted:
            await started(restarted)
            await asyncio.sleep(1.5)
            results = await results_by_id(settings, expect=2)
            dead_letters = await read_topic(
                settings.bootstrap_servers, settings.dead_letter_topic, expect=1, settle_s=1.0
            )

    assert huge["status"] == "failed"
    assert [error["code"] for error in huge["errors"]] == ["input.invalid"]
    assert len(huge["errors"][0]["message"]) < 2_100, "the result does not quote the whole input"
    assert small["status"] == "completed"
    headers = dict(dead.headers)
    assert headers["dlq_code"] == b"input.invalid"
    assert len(headers["dlq_reason"].decode()) < 2_100, "the dead letter's reason is capped"
    assert dead.value == huge_value, "the original record is kept in the dead letter"
    assert committed[0] == 2
    assert results == collections.Counter({"huge-1": 1, "small-1": 1})
    assert len(dead_letters) == 1
    assert len(server.hits) == 1


# -- 6. calls of a finished saga are cancelled -----------------------------------------


async def test_a_failed_saga_leaves_no_call_in_flight(
    settings: CoordinatorSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.runtime import dispatcher

    # The saga waits for the hanging call's own timeout before it publishes its
    # failed result; the adapter would give up only ADAPTER_GRACE_MS later. With
    # that grace stretched to a minute, only cancelling the finished saga's calls
    # frees the call (and its connection) within seconds.
    monkeypatch.setattr(dispatcher, "ADAPTER_GRACE_MS", 60_000)

    def hang(hit: Hit) -> tuple[int, Any]:
        server.release.wait(timeout=120)
        return HTTPStatus.OK, {"id": "late"}

    with RecordingServer({"refuse": answer_status(400), "hang": hang}) as server:
        registry = shop_registry(
            server,
            {
                "refuse": http_step("refuse"),
                "hang": http_step("hang", timeout_ms=1_500),
            },
        )
        async with (
            SagaCoordinator(registry=registry, settings=settings) as coordinator,
            OrchestratorClient(settings) as client,
        ):
            await started(coordinator)
            await publish_requests(settings, [("refused-1", {"id": "1"})])
            result = await client.wait_for("refused-1", timeout_s=WAIT_S)
            in_flight = coordinator._dispatcher.calls_in_flight
            for _ in range(50):
                if in_flight == 0:
                    break
                await asyncio.sleep(0.1)
                in_flight = coordinator._dispatcher.calls_in_flight
            sagas = coordinator.in_flight

    assert result["status"] == "failed"
    errors = {error["step"]: error for error in result["errors"]}
    assert errors["refuse"]["code"] == "step.business_error"
    assert errors["refuse"]["adapter_code"] == "http.400"
    assert len(server.of("hang")) == 1, "the hanging call was made (test setup)"
    assert in_flight == 0, "the finished saga's call must not stay in flight"
    assert sagas == 0


# -- 7. requests not keyed by their id -------------------------------------------------


async def test_requests_not_keyed_by_their_id_are_rejected(settings: CoordinatorSettings) -> None:
    with RecordingServer() as server:
        registry = shop_registry(server, {"a": http_step("a")})
        async with (
            SagaCoordinator(registry=registry, settings=settings) as coordinator,
            OrchestratorClient(settings) as client,
        ):
            await started(coordinator)
            await publish_record(
                settings,
                value=request_value("no-key-1", {"id": "1"}),
                key=None,
                headers=request_headers("no-key-1"),
            )
            await publish_record(
                settings,
                value=request_value("wrong-key-1", {"id": "2"}),
                key=b"someone-else",
                headers=request_headers("wrong-key-1"),
            )
            no_key = await client.wait_for("no-key-1", timeout_s=WAIT_S)
            wrong_key = await client.wait_for("wrong-key-1", timeout_s=WAIT_S)
            await publish_requests(settings, [("after-1", {"id": "3"}), ("after-2", {"id": "4"})])
            later = [await client.wait_for(rid, timeout_s=WAIT_S) for rid in ("after-1", "after-2")]
            dead = await read_topic(
                settings.bootstrap_servers, settings.dead_letter_topic, expect=2, timeout_s=WAIT_S
            )

    for result in (no_key, wrong_key):
        assert result["status"] == "failed"
        assert [error["code"] for error in result["errors"]] == ["request.key_mismatch"]
    assert [result["status"] for result in later] == ["completed", "completed"]
    assert sorted(record.key or b"" for record in dead) == [b"", b"someone-else"]
    assert {dict(record.headers)["dlq_code"] for record in dead} == {b"request.key_mismatch"}
    assert len(server.hits) == 2, "a rejected request calls nobody"


# -- 8. a dead loop stops the coordinator ------------------------------------------------


async def test_a_dead_loop_fails_the_coordinator(
    settings: CoordinatorSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    trigger = asyncio.Event()

    class DeadlineLoopBroke(RuntimeError):
        pass

    async def broken_run_deadlines() -> None:
        await trigger.wait()
        raise DeadlineLoopBroke("the deadline loop broke")

    with RecordingServer() as server:
        registry = shop_registry(server, {"a": http_step("a")})
        coordinator = SagaCoordinator(registry=registry, settings=settings)
        monkeypatch.setattr(coordinator._dispatcher, "run_deadlines", broken_run_deadlines)
        async with coordinator:
            await started(coordinator)
            assert not coordinator.failed.done()
            trigger.set()
            with pytest.raises(DeadlineLoopBroke, match="the deadline loop broke"):
                await asyncio.wait_for(coordinator.failed, 10)


# -- a graceful stop records what it answers -------------------------------------------


async def test_a_rejected_request_answered_during_a_stop_is_committed(
    settings: CoordinatorSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its finished marker is written before the writer stops, so its offset is
    committed and the next instance does not dead-letter it a second time."""
    with RecordingServer() as server:
        registry = shop_registry(server, {"a": http_step("a")})
        async with SagaCoordinator(registry=registry, settings=settings) as coordinator:
            await started(coordinator)
            publisher = coordinator._outbox.publisher
            assert publisher is not None
            send = publisher.send_until_acknowledged

            async def slow_send(*args: Any, **kwargs: Any) -> None:
                await asyncio.sleep(1.0)  # still on its way when the stop begins
                await send(*args, **kwargs)

            monkeypatch.setattr(publisher, "send_until_acknowledged", slow_send)
            # Keyed but without CloudEvents headers: a dead letter and a failed result.
            await publish_record(settings, value=b"junk", key=b"stopping-1", headers=[])
            for _ in range(int(WAIT_S * 10)):
                if coordinator._outbox.pending:
                    break
                await asyncio.sleep(0.1)
            assert coordinator._outbox.pending == 2, "stopping while both answers are out"
        committed = await wait_until_committed(settings)

        async with SagaCoordinator(registry=registry, settings=settings) as restarted:
            await started(restarted)
            await asyncio.sleep(1.5)
            dead = await read_topic(
                settings.bootstrap_servers, settings.dead_letter_topic, expect=1, settle_s=1.0
            )
            results = await results_by_id(settings, expect=1)

    assert sum(committed.values()) == 1
    assert len(dead) == 1, "the restart must not see the rejected record again"
    assert results == collections.Counter({"stopping-1": 1})


# -- a changelog that cannot be written ------------------------------------------------


async def test_a_changelog_write_refused_for_good_stops_the_coordinator_uncommitted(
    settings: CoordinatorSettings,
) -> None:
    # The broker refuses every state record (a 100-byte limit on the changelog): the
    # coordinator must stop rather than run sagas it could not restore, and the
    # request's offset must stay uncommitted so the next instance runs it.
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from orchestrator.runtime.changelog import ChangelogError
    from tests.integration.kafka_io import committed_offsets

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(
                    settings.changelog_topic,
                    settings.partitions,
                    1,
                    topic_configs={"cleanup.policy": "compact", "max.message.bytes": "100"},
                )
            ]
        )
    finally:
        await admin.close()
    with RecordingServer() as server:
        registry = shop_registry(server, {"a": http_step("a")})
        async with SagaCoordinator(registry=registry, settings=settings) as coordinator:
            await started(coordinator)
            await publish_requests(settings, [("refused-1", {"id": "1"})])
            with pytest.raises(ChangelogError, match="writing the saga changelog failed"):
                await asyncio.wait_for(coordinator.failed, WAIT_S)
            await asyncio.sleep(0.5)  # commits would have run by now
    committed = await committed_offsets(
        settings.bootstrap_servers, settings.group_id, settings.request_topic
    )
    assert all(offset in (None, 0) for offset in committed.values())
