"""Which event loop the long-running commands run on."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator import eventloop
from orchestrator.errors import SetupError


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_uvloop_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORCH_EVENT_LOOP", raising=False)
    assert eventloop.loop_name() == "uvloop"
    assert eventloop.run(_loop_module()).startswith("uvloop")


def test_the_standard_loop_can_be_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_EVENT_LOOP", "asyncio")
    assert eventloop.loop_name() == "asyncio"
    assert eventloop.run(_loop_module()).startswith("asyncio")


def test_an_unknown_loop_is_a_setup_error_naming_the_choices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORCH_EVENT_LOOP", "tokio")
    with pytest.raises(SetupError, match="ORCH_EVENT_LOOP must be uvloop or asyncio, got 'tokio'"):
        eventloop.loop_name()
