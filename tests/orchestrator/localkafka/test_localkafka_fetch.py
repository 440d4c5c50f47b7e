"""The jar cache: fetched once with Maven, then reused without it."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import ToolMissingError
from orchestrator.localkafka import BrokerSettings, ensure_kafka_jars


@pytest.mark.kafka
def test_second_fetch_runs_no_maven_and_a_missing_marker_fetches_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = BrokerSettings(cache_dir=tmp_path / "cache")
    first: list[str] = []

    libs = ensure_kafka_jars(settings, progress=first.append)

    assert (libs / "kafka_2.13-4.3.1.jar").is_file()
    assert (libs / "log4j-slf4j-impl-2.25.4.jar").is_file()
    assert settings.fetched_marker.is_file()
    assert first[0] == "Fetching Apache Kafka 4.3.1 with Maven (first run only)…"

    # With no java or mvn on PATH, any Maven run would fail loudly.
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    second: list[str] = []

    assert ensure_kafka_jars(settings, progress=second.append) == libs
    assert second == []

    # Without the marker the cache counts as half-fetched and is fetched again.
    settings.fetched_marker.unlink()
    with pytest.raises(ToolMissingError):
        ensure_kafka_jars(settings, progress=second.append)
