"""``orchestrator run --processes N``: what each child is given."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from orchestrator import processes


class _Child:
    """A child process that ends at once."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = 0

    async def wait(self) -> int:
        return 0

    def send_signal(self, signum: int) -> None:
        raise AssertionError("an ended child gets no signal")


async def test_each_child_gets_its_own_metrics_port(monkeypatch: pytest.MonkeyPatch) -> None:
    environments: list[dict[str, str]] = []

    async def spawn(*_: Any, env: dict[str, str], **__: Any) -> _Child:
        environments.append(env)
        await asyncio.sleep(0)
        return _Child(1000 + len(environments))

    monkeypatch.setattr(processes.asyncio, "create_subprocess_exec", spawn)
    monkeypatch.setenv("ORCH_METRICS_PORT", "9400")
    monkeypatch.setenv("ORCH_GROUP_INSTANCE_ID", "host")
    await processes.supervise(Path("flows"), processes=3, log_level="warning")
    assert [env["ORCH_METRICS_PORT"] for env in environments] == ["9400", "9401", "9402"]
    assert [env["ORCH_GROUP_INSTANCE_ID"] for env in environments] == ["host-1", "host-2", "host-3"]


async def test_metrics_stay_off_in_children_when_off(monkeypatch: pytest.MonkeyPatch) -> None:
    environments: list[dict[str, str]] = []

    async def spawn(*_: Any, env: dict[str, str], **__: Any) -> _Child:
        environments.append(env)
        return _Child(1)

    monkeypatch.setattr(processes.asyncio, "create_subprocess_exec", spawn)
    monkeypatch.delenv("ORCH_METRICS_PORT", raising=False)
    await processes.supervise(Path("flows"), processes=2, log_level="warning")
    assert [env.get("ORCH_METRICS_PORT") for env in environments] == [None, None]
