"""Missing Java or Maven is reported as one actionable sentence."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from orchestrator.errors import ToolMissingError
from orchestrator.localkafka import BrokerSettings, ensure_kafka_jars, start


def test_start_without_java_names_java_and_docker_compose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    settings = BrokerSettings(cache_dir=tmp_path / "cache", runtime_dir=tmp_path / "b", port=0)

    with pytest.raises(ToolMissingError) as caught:
        start(settings, progress=lambda _line: None)

    message = str(caught.value)
    assert "Java" in message
    assert "docker compose" in message
    assert message.count(". ") == 0, "the message is one sentence"
    assert not (tmp_path / "b" / "broker.pid").exists()


@pytest.mark.skipif(shutil.which("java") is None, reason="needs java on PATH")
def test_fetch_without_maven_names_maven_and_docker_compose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    java_only = tmp_path / "java-only-bin"
    java_only.mkdir()
    java = shutil.which("java")
    assert java is not None
    (java_only / "java").symlink_to(Path(java).resolve())
    monkeypatch.setenv("PATH", str(java_only))

    with pytest.raises(ToolMissingError) as caught:
        ensure_kafka_jars(BrokerSettings(cache_dir=tmp_path / "cache"), progress=print)

    message = str(caught.value)
    assert "Maven" in message
    assert "docker compose" in message
