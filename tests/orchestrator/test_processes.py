"""``orchestrator run --processes N``: what each child is given."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from orchestrator import processes
from orchestrator.errors import SetupError
from orchestrator.settings import CoordinatorSettings


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
    metrics_port = CoordinatorSettings.from_env().metrics_port
    await processes.supervise(
        Path("flows"), processes=3, log_level="warning", metrics_port=metrics_port
    )
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


async def test_metrics_ports_past_65535_are_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    async def spawn(*_: Any, **__: Any) -> _Child:
        raise AssertionError("no child starts")

    monkeypatch.setattr(processes.asyncio, "create_subprocess_exec", spawn)
    with pytest.raises(SetupError, match=r"at most 65533\."):
        await processes.supervise(
            Path("flows"), processes=3, log_level="warning", metrics_port=65534
        )


async def test_a_port_the_settings_accept_but_int_does_not_is_no_crash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    environments: list[dict[str, str]] = []

    async def spawn(*_: Any, env: dict[str, str], **__: Any) -> _Child:
        environments.append(env)
        return _Child(1)

    monkeypatch.setattr(processes.asyncio, "create_subprocess_exec", spawn)
    monkeypatch.setenv("ORCH_METRICS_PORT", "9400.0")  # pydantic takes it, int() does not
    metrics_port = CoordinatorSettings.from_env().metrics_port
    await processes.supervise(
        Path("flows"), processes=2, log_level="warning", metrics_port=metrics_port
    )
    assert [env["ORCH_METRICS_PORT"] for env in environments] == ["9400", "9401"]
