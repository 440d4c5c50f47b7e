"""A real broker: started on free ports, used by real clients, stopped by pid."""

from __future__ import annotations

import asyncio
import shutil
import socket
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from orchestrator.errors import BrokerStartError
from orchestrator.localkafka import BrokerSettings, running_broker, start, status, stop


async def _round_trip(bootstrap: str) -> list[tuple[bytes | None, bytes | None]]:
    topic = f"localkafka-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(3):
            await producer.send_and_wait(topic, f"v{i}".encode(), key=f"k{i}".encode())
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"{topic}-group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    received: list[tuple[bytes | None, bytes | None]] = []
    try:
        async with asyncio.timeout(30):
            while len(received) < 3:
                batches = await consumer.getmany(timeout_ms=500)
                received += [(m.key, m.value) for ms in batches.values() for m in ms]
    finally:
        await consumer.stop()
    return received


@pytest.mark.kafka
def test_broker_serves_clients_and_stops_by_pid(tmp_path: Path) -> None:
    settings = BrokerSettings(port=0, runtime_dir=tmp_path / "broker")
    lines: list[str] = []

    info = start(settings, progress=lines.append)
    try:
        assert info.started
        assert info.bootstrap == f"127.0.0.1:{info.settings.port}"
        assert info.settings.port != info.settings.resolved_controller_port
        assert info.runtime_dir == tmp_path / "broker"
        assert lines[-1] == (
            f"Kafka broker ready on {info.bootstrap} (pid {info.pid}); log: {info.log_path}"
        )
        assert "Kafka Server started" in info.log_path.read_text()

        assert asyncio.run(_round_trip(info.bootstrap)) == [
            (b"k0", b"v0"),
            (b"k1", b"v1"),
            (b"k2", b"v2"),
        ]

        current = status(settings)
        assert current.running
        assert current.pid == info.pid
        assert current.bootstrap == info.bootstrap

        # A scoped user of an already running broker must leave it running.
        with running_broker(settings, progress=lines.append) as again:
            assert not again.started
            assert again.pid == info.pid
        assert status(settings).running
        assert lines[-1].startswith("Reusing the Kafka broker already running")
    finally:
        stopped = stop(settings, progress=lines.append)

    assert stopped
    assert not Path(f"/proc/{info.pid}").exists()
    assert not (tmp_path / "broker" / "broker.pid").exists()
    after = status(settings)
    assert not after.running
    assert after.pid is None


@pytest.mark.skipif(shutil.which("java") is None, reason="needs java on PATH")
def test_start_refuses_a_port_taken_by_another_program(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = BrokerSettings(port=port, runtime_dir=tmp_path / "broker")

        with pytest.raises(BrokerStartError, match=f"Port {port} on 127.0.0.1 is already in use"):
            start(settings, progress=lambda _line: None)

    assert not (tmp_path / "broker" / "broker.pid").exists()
