"""The client over the real broker: one result reader serves every waiter."""

from __future__ import annotations

import asyncio
import time

import pytest

from orchestrator.client import OrchestratorClient, ResultTimeoutError
from orchestrator.runtime.coordinator import SagaCoordinator
from orchestrator.settings import CoordinatorSettings
from tests.integration.durability_io import create_topics, started
from tests.integration.saga_flows import FLOW, RecordingServer, answer_ok, http_step, shop_registry

pytestmark = pytest.mark.kafka


async def test_concurrent_runs_share_one_reader_and_each_gets_its_own_result(
    settings: CoordinatorSettings,
) -> None:
    await create_topics(settings)
    with RecordingServer({"a": answer_ok}) as server:
        registry = shop_registry(server, {"a": http_step("a")}, result={"id": "a.id"})
        async with (
            SagaCoordinator(registry=registry, settings=settings) as coordinator,
            OrchestratorClient(settings) as client,
        ):
            await started(coordinator)
            ids = [f"many-{n}" for n in range(200)]
            results = await asyncio.gather(
                *(client.run(FLOW, {"id": rid}, request_id=rid, timeout_s=60) for rid in ids)
            )
            # A result already read is returned at once, from memory.
            again = await client.wait_for(ids[0], timeout_s=0.01)
            # A request nobody answers times out on its own, while others are answered.
            began = time.monotonic()
            with pytest.raises(ResultTimeoutError, match="No result for request never-sent"):
                await client.wait_for("never-sent", timeout_s=0.5)
            waited = time.monotonic() - began

    assert [result["request_id"] for result in results] == ids
    assert [result["data"] for result in results] == [{"id": f"a-{rid}"} for rid in ids]
    assert again is results[0]
    assert 0.4 < waited < 10
    assert client.duplicates == []
