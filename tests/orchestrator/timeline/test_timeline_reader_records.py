"""The timeline reader's handling of records, without a broker: which changelog
records it decodes, what ends a running saga, and a failed start that leaves no
consumer open."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiokafka.errors import KafkaConnectionError

from orchestrator.settings import CoordinatorSettings
from orchestrator.timeline import TimelineReader, TimelineStore
from orchestrator.timeline import reader as reader_module

SETTINGS = CoordinatorSettings(bootstrap_servers="127.0.0.1:1")
CHANGELOG = SETTINGS.changelog_topic


@pytest.fixture
async def reader() -> AsyncIterator[TimelineReader]:
    """A reader never started (its records are handed to it), closed afterwards."""
    made = TimelineReader(SETTINGS, TimelineStore(max_sagas=10))
    yield made
    await made.stop()


def start(request_id: str, started_ms: int) -> tuple[bytes, bytes]:
    body = {"flow": "orders", "fingerprint": "f", "version": 1, "input": {}}
    return f"s:{request_id}".encode(), orjson.dumps({**body, "started_ms": started_ms})


async def test_markers_and_tombstones_end_running_sagas(reader: TimelineReader) -> None:
    store = reader.store
    for request_id, at in (("marked", 1), ("tombstoned", 2), ("live", 3)):
        reader._take(CHANGELOG, *start(request_id, at))
    reader._take(CHANGELOG, b"s:marked", orjson.dumps({"done": 9}))
    reader._take(CHANGELOG, b"s:tombstoned", None)

    assert [(s["request_id"], s["status"]) for s in store.sagas()] == [("live", "running")]
    # A start record read after its marker (another catch-up) does not bring it back.
    reader._take(CHANGELOG, *start("marked", 1))
    assert [s["request_id"] for s in store.sagas()] == ["live"]


async def test_only_starts_markers_and_the_events_of_running_sagas_are_decoded(
    reader: TimelineReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[bytes] = []
    real_loads = orjson.loads

    def counting_loads(value: bytes) -> Any:
        decoded.append(value)
        return real_loads(value)

    monkeypatch.setattr(reader_module.orjson, "loads", counting_loads)
    store = reader.store
    reader._take(CHANGELOG, *start("live", 1))
    big_output = orjson.dumps({"k": "reply", "call": "a", "at": 5, "output": "x" * 10_000})
    reader._take(CHANGELOG, b"e:ended/1", big_output)
    reader._take(CHANGELOG, b"f:abc", orjson.dumps({"name": "orders", "steps": {}}))
    reader._take(CHANGELOG, b"c:0/2:e:live/1", b"part of a value")
    reader._take(CHANGELOG, b"e:live/1", big_output)

    assert len(decoded) == 2  # the start record and the running saga's event
    detail = store.detail("live")
    assert detail is not None
    assert detail["event_count"] == 1


async def test_a_start_that_fails_closes_its_consumer() -> None:
    reader = TimelineReader(SETTINGS, TimelineStore(max_sagas=10))

    with pytest.raises(KafkaConnectionError):
        await reader.start()
    # aiokafka marks a consumer stopped (and warns of one never stopped) by this flag.
    assert reader._consumer._closed is True
    await reader.stop()  # stopping again after a failed start is harmless
