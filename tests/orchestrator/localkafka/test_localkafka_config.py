"""Settings, config files and messages of the local broker manager (no JVM needed)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from orchestrator.errors import SetupError
from orchestrator.localkafka import BrokerSettings, bootstrap_from_env, status, stop
from orchestrator.localkafka.layout import _new_cluster_id, recorded_ports, write_configs


def test_defaults_come_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ORCH_HOME", str(tmp_path))
    monkeypatch.setenv("ORCH_BROKER_PORT", "19192")

    settings = BrokerSettings()

    assert settings.kafka_version == "4.3.1"
    assert settings.libs_dir == tmp_path / "kafka_2.13-4.3.1" / "libs"
    assert settings.broker_dir == tmp_path / "broker-19192"
    assert settings.resolved_controller_port == 19193
    assert settings.bootstrap == "127.0.0.1:19192"


def test_defaults_without_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORCH_HOME", raising=False)
    monkeypatch.delenv("ORCH_BROKER_PORT", raising=False)

    settings = BrokerSettings()

    assert settings.port == 9092
    assert settings.cache_dir == Path.home() / ".cache" / "kafka-orchestrator"


def test_bad_port_variable_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_BROKER_PORT", "70000")

    with pytest.raises(SetupError, match="ORCH_BROKER_PORT"):
        BrokerSettings()


def test_bootstrap_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    assert bootstrap_from_env() is None

    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    assert bootstrap_from_env() == "kafka:9092"


def test_written_config_records_its_ports(tmp_path: Path) -> None:
    settings = BrokerSettings(cache_dir=tmp_path, port=15001, controller_port=15007)

    write_configs(settings)

    assert recorded_ports(settings) == (15001, 15007)
    properties = settings.properties_file.read_text()
    assert f"log.dirs={settings.data_dir}" in properties
    assert "controller.quorum.voters=1@127.0.0.1:15007" in properties
    assert str(settings.server_log) in settings.log4j_file.read_text()


def test_cluster_id_has_kafka_uuid_shape() -> None:
    cluster_id = _new_cluster_id()

    assert len(cluster_id) == 22
    assert not cluster_id.startswith("-")
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_stop_and_status_when_nothing_runs(tmp_path: Path) -> None:
    settings = BrokerSettings(cache_dir=tmp_path, port=15011)
    lines: list[str] = []

    assert stop(settings, progress=lines.append) is False

    assert lines == ["No broker is running on port 15011."]
    current = status(settings)
    assert not current.running
    assert current.pid is None
    assert current.bootstrap == "127.0.0.1:15011"
