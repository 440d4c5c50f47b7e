"""Coordinator settings: defaults, environment overrides, topic prefixes."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from orchestrator.errors import SetupError
from orchestrator.settings import DEFAULT_BOOTSTRAP, CoordinatorSettings


def test_defaults_without_environment() -> None:
    settings = CoordinatorSettings.from_env({})

    assert settings == CoordinatorSettings()
    assert settings.bootstrap_servers == DEFAULT_BOOTSTRAP == "127.0.0.1:9092"
    assert (settings.request_topic, settings.reply_topic) == (
        "orchestrator.requests",
        "orchestrator.replies",
    )
    assert (settings.partitions, settings.create_topics) == (6, True)


@pytest.mark.parametrize(
    ("environ", "field", "value"),
    [
        ({"KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9092"}, "bootstrap_servers", "k1:9092,k2:9092"),
        ({"KAFKA_BOOTSTRAP_SERVERS": ""}, "bootstrap_servers", DEFAULT_BOOTSTRAP),
        ({"ORCH_BOOTSTRAP_SERVERS": "ignored:1"}, "bootstrap_servers", DEFAULT_BOOTSTRAP),
        ({"ORCH_REQUEST_TOPIC": "in"}, "request_topic", "in"),
        ({"ORCH_REPLY_TOPIC": "back"}, "reply_topic", "back"),
        ({"ORCH_RESULT_TOPIC": "out"}, "result_topic", "out"),
        ({"ORCH_DEAD_LETTER_TOPIC": "dead"}, "dead_letter_topic", "dead"),
        ({"ORCH_GROUP_ID": "g"}, "group_id", "g"),
        ({"ORCH_SOURCE": "urn:x"}, "source", "urn:x"),
        ({"ORCH_PARTITIONS": "12"}, "partitions", 12),
        ({"ORCH_PARTITIONS": " 3 "}, "partitions", 3),
        ({"ORCH_REPLICATION_FACTOR": "1"}, "replication_factor", 1),
        ({"ORCH_HTTP_MAX_CONNECTIONS": "50"}, "http_max_connections", 50),
        ({"ORCH_COMMIT_INTERVAL_MS": "25"}, "commit_interval_ms", 25),
        ({"ORCH_CREATE_TOPICS": "false"}, "create_topics", False),
        ({"ORCH_CREATE_TOPICS": "OFF"}, "create_topics", False),
        ({"ORCH_CREATE_TOPICS": "0"}, "create_topics", False),
        ({"ORCH_CREATE_TOPICS": "no"}, "create_topics", False),
        ({"ORCH_CREATE_TOPICS": "Yes"}, "create_topics", True),
        ({"ORCH_CREATE_TOPICS": "1"}, "create_topics", True),
        ({"ORCH_CREATE_TOPICS": "on"}, "create_topics", True),
    ],
)
def test_environment_overrides(environ: dict[str, str], field: str, value: Any) -> None:
    assert getattr(CoordinatorSettings.from_env(environ), field) == value


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"ORCH_PARTITIONS": "six"}, "ORCH_PARTITIONS must be a whole number, got 'six'"),
        ({"ORCH_MAX_BATCH": "1.5"}, "ORCH_MAX_BATCH must be a whole number"),
        ({"ORCH_CREATE_TOPICS": "maybe"}, "ORCH_CREATE_TOPICS must be true or false, got 'maybe'"),
        ({"ORCH_PARTITIONS": "0"}, "partitions must be at least 1, got 0"),
        ({"ORCH_MAX_BATCH": "0"}, "max_batch must be at least 1, got 0"),
    ],
)
def test_bad_values_are_setup_errors(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SetupError) as caught:
        CoordinatorSettings.from_env(environ)

    assert message in str(caught.value)


def test_overrides_win_over_environment() -> None:
    settings = CoordinatorSettings.from_env(
        {"ORCH_PARTITIONS": "4", "KAFKA_BOOTSTRAP_SERVERS": "env:1"},
        partitions=2,
        bootstrap_servers="arg:1",
    )

    assert (settings.partitions, settings.bootstrap_servers) == (2, "arg:1")


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "from-os:9092")
    monkeypatch.setenv("ORCH_GROUP_ID", "os-group")

    settings = CoordinatorSettings.from_env()

    assert (settings.bootstrap_servers, settings.group_id) == ("from-os:9092", "os-group")


def test_with_topics_prefixes_every_topic_and_the_group() -> None:
    base = CoordinatorSettings(bootstrap_servers="b:1", partitions=3, request_topic="custom")

    prefixed = base.with_topics("t.42")

    assert (
        prefixed.request_topic,
        prefixed.reply_topic,
        prefixed.result_topic,
        prefixed.dead_letter_topic,
        prefixed.group_id,
    ) == ("t.42.requests", "t.42.replies", "t.42.results", "t.42.dlq", "t.42.coordinator")
    assert (prefixed.bootstrap_servers, prefixed.partitions) == ("b:1", 3)
    assert base.request_topic == "custom"


@pytest.mark.parametrize("field", ["partitions", "max_batch"])
def test_direct_construction_is_checked(field: str) -> None:
    with pytest.raises(SetupError, match=f"{field} must be at least 1"):
        CoordinatorSettings(**{field: 0})


def test_settings_are_frozen() -> None:
    settings = CoordinatorSettings()

    with pytest.raises(ValidationError, match="frozen"):
        settings.partitions = 2  # type: ignore[misc]


def test_cache_max_entries_from_the_environment() -> None:
    assert CoordinatorSettings().cache_max_entries == 10_000
    assert CoordinatorSettings.from_env({"ORCH_CACHE_MAX_ENTRIES": "500"}).cache_max_entries == 500
    assert CoordinatorSettings.from_env({"ORCH_CACHE_MAX_ENTRIES": "0"}).cache_max_entries == 0
    with pytest.raises(
        SetupError, match=r"cache_max_entries must be 0 \(keep no answers\) or more, got -1"
    ):
        CoordinatorSettings.from_env({"ORCH_CACHE_MAX_ENTRIES": "-1"})


def test_to_env_gives_the_same_settings_back() -> None:
    settings = CoordinatorSettings(
        bootstrap_servers="kafka-1:9092",
        group_instance_id="pod-7",
        create_topics=False,
        changelog_delay_ms=0,
        crash_at="mid-compensation",
    ).with_topics("team.x")
    env = settings.to_env()
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka-1:9092"
    assert env["ORCH_CREATE_TOPICS"] == "false"
    assert CoordinatorSettings.from_env(env) == settings


def test_plain_construction_reads_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_PARTITIONS", "9")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "stray:1")

    settings = CoordinatorSettings(group_id="g")

    assert (settings.partitions, settings.bootstrap_servers) == (6, DEFAULT_BOOTSTRAP)
    assert CoordinatorSettings.from_env().partitions == 9


def test_replace_is_validated_and_leaves_the_original() -> None:
    base = CoordinatorSettings(partitions=3)

    assert base.replace(max_batch=7).max_batch == 7
    assert base.replace(max_batch=7).partitions == 3
    assert base.max_batch == 500
    with pytest.raises(SetupError, match="max_batch must be at least 1"):
        base.replace(max_batch=0)
    with pytest.raises(SetupError, match="max_bach is not a setting"):
        base.replace(max_bach=7)


def test_unknown_orch_variables_are_ignored() -> None:
    assert CoordinatorSettings.from_env({"ORCH_NOT_A_SETTING": "1"}) == CoordinatorSettings()


def test_every_setting_has_a_description() -> None:
    undocumented = [
        name for name, field in CoordinatorSettings.model_fields.items() if not field.description
    ]

    assert undocumented == []
