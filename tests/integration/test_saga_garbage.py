"""Sagas leave no cyclic garbage: the collector policy freezes survivors, and a
frozen cycle would never be collected (see orchestrator.runtime.collector)."""

from __future__ import annotations

import asyncio
import gc

import pytest

from orchestrator.client import OrchestratorClient
from orchestrator.runtime.coordinator import SagaCoordinator
from orchestrator.settings import CoordinatorSettings
from tests.integration.durability_io import create_topics, started
from tests.integration.saga_flows import FLOW, RecordingServer, answer_ok, http_step, shop_registry

pytestmark = pytest.mark.kafka

SAGAS = 300


async def test_completed_sagas_leave_no_cyclic_garbage(settings: CoordinatorSettings) -> None:
    # The policy's own passes would collect what this test counts.
    settings = settings.replace(gc_freeze_interval_ms=0)
    await create_topics(settings)
    with RecordingServer({"a": answer_ok, "b": answer_ok}) as server:
        registry = shop_registry(
            server,
            {"a": http_step("a"), "b": http_step("b", reads="a.id")},
            result={"pair": "[a.id, b.id]", "upper": "b"},
        )
        async with (
            SagaCoordinator(registry=registry, settings=settings) as coordinator,
            OrchestratorClient(settings) as client,
        ):
            await started(coordinator)
            await asyncio.gather(
                *(client.run(FLOW, {"id": f"w-{n}"}, timeout_s=60) for n in range(20))
            )
            gc.collect()
            gc.disable()
            try:
                results = await asyncio.gather(
                    *(client.run(FLOW, {"id": f"g-{n}"}, timeout_s=60) for n in range(SAGAS))
                )
                await asyncio.sleep(0.5)
                found = gc.collect()
            finally:
                gc.enable()

    assert {result["status"] for result in results} == {"completed"}
    # Kafka clients and the event loop make a little; before the fix every saga left
    # 37 objects in cycles (jmespath interpreters).
    assert found < SAGAS, f"{found} objects in cycles after {SAGAS} sagas"
