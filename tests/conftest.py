"""Shared fixtures: one real Kafka broker per test run, fresh topics per test.

The broker is the project's own (fetched with Maven, started on free ports in a
temporary folder, stopped by its pid at the end), unless KAFKA_BOOTSTRAP_SERVERS
points at one already running.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from handlers.demo.services import DemoHttpServices
from orchestrator.flow_files import FlowRegistry, load_flows
from orchestrator.localkafka import BrokerSettings, bootstrap_from_env, running_broker
from orchestrator.settings import CoordinatorSettings

DEMO_FLOWS = Path(__file__).parents[1] / "handlers" / "demo" / "flows"


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap servers of the one broker this test run uses."""
    external = bootstrap_from_env()
    if external:
        yield external
        return
    runtime = tmp_path_factory.mktemp("kafka")
    with running_broker(BrokerSettings(port=0, runtime_dir=runtime)) as broker:
        yield broker.bootstrap


@pytest.fixture
def topic_prefix() -> str:
    """A prefix no other test uses, so each test gets its own topics and groups."""
    return f"test.{uuid.uuid4().hex[:10]}"


@pytest.fixture
def settings(kafka_bootstrap: str, topic_prefix: str) -> CoordinatorSettings:
    """Coordinator settings on fresh topics of the test broker."""
    return CoordinatorSettings(
        bootstrap_servers=kafka_bootstrap, partitions=2, commit_interval_ms=50
    ).with_topics(topic_prefix)


@pytest.fixture
def demo_services(monkeypatch: pytest.MonkeyPatch, topic_prefix: str) -> Iterator[DemoHttpServices]:
    """The demo HTTP services on free ports, with the catalog's env pointing at them."""
    with DemoHttpServices() as services:
        for name, value in services.env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("DEMO_INVENTORY_TOPIC", f"{topic_prefix}.inventory.commands")
        yield services


@pytest.fixture
def demo_registry(demo_services: DemoHttpServices) -> FlowRegistry:
    """The demo flows, loaded against the running demo services."""
    assert os.environ["DEMO_ORDERS_URL"] == demo_services.servers["orders"].url
    return load_flows(DEMO_FLOWS)


@pytest.fixture
async def inventory_worker(
    kafka_bootstrap: str, topic_prefix: str, settings: CoordinatorSettings
) -> AsyncIterator[None]:
    """The demo inventory adapter served over Kafka on this test's command topic."""
    from handlers.demo.inventory import inventory
    from handlers.sdk import Service
    from handlers.worker import build_worker

    service = Service.with_command_topic(inventory, f"{topic_prefix}.inventory.commands")
    broker, _ = build_worker(
        service,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"{topic_prefix}.inventory",
        dead_letter_topic=settings.dead_letter_topic,
        reply_topics=[settings.reply_topic],
    )
    await broker.start()
    try:
        yield
    finally:
        await broker.stop()
