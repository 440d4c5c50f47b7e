"""This orchestrator, as a user runs it: ``orchestrator run`` processes on a broker.

The load generator publishes request events and reads result events with one
:class:`~orchestrator.client.OrchestratorClient` (one producer, one result reader),
so every request crosses Kafka twice plus the changelog, as in production. The
CPU and memory counted are the coordinator processes' (and the remote adapter's,
for the Kafka-step variant: that process does the user call the in-process
variant does inside the coordinator).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench.procstat import children
from bench.systems.base import terminate
from orchestrator.client import OrchestratorClient
from orchestrator.settings import CoordinatorSettings

FLOWS = Path(__file__).parents[1] / "flows"


def coordinator_env(settings: CoordinatorSettings, **extra: str) -> dict[str, str]:
    """The environment of an ``orchestrator run`` process on ``settings``' broker and topics."""
    return {**os.environ, **settings.to_env(), **extra}


class OrchestratorError(Exception):
    """A request ended without a complete result."""


class OrchestratorSystem:
    """``orchestrator run bench/flows [--processes N]`` (plus the Kafka adapter if asked)."""

    def __init__(
        self,
        mock_url: str,
        *,
        bootstrap: str,
        processes: int = 1,
        kafka_step: bool = False,
        extra_env: dict[str, str] | None = None,
        flow: str | None = None,
        name: str | None = None,
    ) -> None:
        self.name = name or (
            "orchestrator-kafka-step"
            if kafka_step
            else ("orchestrator" if processes == 1 else f"orchestrator-{processes}p")
        )
        self._mock_url = mock_url
        self._processes = processes
        self._kafka_step = kafka_step
        self._flow = flow or ("order-details-kafka" if kafka_step else "order-details")
        prefix = f"bench.{self.name}.{uuid.uuid4().hex[:6]}"
        self.settings = CoordinatorSettings.from_env(
            bootstrap_servers=bootstrap, partitions=6
        ).with_topics(prefix)
        self._env = coordinator_env(
            self.settings,
            ORCH_GROUP_INSTANCE_ID=f"{prefix}.member",
            ORCH_PARTITIONS="6",
            BENCH_MOCK_URL=mock_url,
            BENCH_USERS_TOPIC=f"{prefix}.users.commands",
            **(extra_env or {}),
        )
        self._coordinator: subprocess.Popen[bytes] | None = None
        self._adapter: subprocess.Popen[bytes] | None = None
        self._client: OrchestratorClient | None = None
        self._log = Path(os.environ.get("BENCH_LOG_DIR", "/tmp")) / f"{prefix}.log"

    async def start(self) -> None:
        log = self._log.open("ab")
        # Started once per system, before any measurement: blocking briefly is fine.
        self._coordinator = subprocess.Popen(  # noqa: ASYNC220
            [sys.executable, "-m", "orchestrator", "run", str(FLOWS)]
            + (["--processes", str(self._processes)] if self._processes > 1 else []),
            env=self._env,
            stdout=log,
            stderr=log,
        )
        if self._kafka_step:
            self._adapter = subprocess.Popen(  # noqa: ASYNC220
                [
                    sys.executable,
                    "-m",
                    "orchestrator",
                    "adapter",
                    "bench.kafka_users:users_kafka",
                    "--group-id",
                    f"{self.settings.group_id}.users",
                    "--dead-letter-topic",
                    self.settings.dead_letter_topic,
                ],
                env=self._env,
                stdout=log,
                stderr=log,
            )
        self._client = await self._connect()
        # The first requests wait for the group to assign every partition.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 90
        while True:
            try:
                await self.run_one(0, timeout_s=10)
                break
            except Exception:
                if loop.time() > deadline or (self._coordinator.poll() is not None):
                    raise
        await asyncio.gather(*(self.run_one(n) for n in range(1, 200)))

    async def _connect(self) -> OrchestratorClient:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while True:
            client = OrchestratorClient(self.settings, source="urn:orchestrator:bench")
            try:
                await client.start()
                return client
            except Exception:
                await client.stop()
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.5)

    async def run_one(self, number: int, *, timeout_s: float = 60.0) -> dict[str, Any]:
        assert self._client is not None
        result = await self._client.run(
            self._flow, {"order_id": f"o-{number}"}, timeout_s=timeout_s
        )
        if result["status"] != "completed" or not result["complete"]:
            codes = ", ".join(error["code"] for error in result["errors"])
            raise OrchestratorError(f"{result['status']}: {codes}")
        data: dict[str, Any] = result["data"]
        return data

    def pids(self) -> list[int]:
        found: list[int] = []
        if self._coordinator is not None:
            found.append(self._coordinator.pid)
            found.extend(children(self._coordinator.pid))
        if self._adapter is not None:
            found.append(self._adapter.pid)
        return found

    def versions(self) -> dict[str, str]:
        return {
            "kafka-orchestrator": version("kafka-orchestrator"),
            "aiokafka": version("aiokafka"),
            "aiohttp": version("aiohttp"),
            "httpx": version("httpx"),
            "processes": str(self._processes),
        }

    def kafka_settings(self) -> dict[str, Any]:
        """What the coordinator's Kafka clients run with."""
        settings = self.settings.model_dump()
        return {
            key: settings[key]
            for key in (
                "partitions",
                "max_batch",
                "max_in_flight",
                "commit_interval_ms",
                "fetch_max_wait_ms",
                "http_max_connections",
                "linger_ms",
            )
        } | {
            "producer": "acks=all, enable_idempotence=True",
            "isolation": "read_committed",
        }

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.stop()
        for process in (self._adapter, self._coordinator):
            await terminate(process, timeout_s=60)
