"""Ingress settings, the Prefer header and the body limits."""

from __future__ import annotations

import pytest

from orchestrator.errors import SetupError
from orchestrator.ingress.body import parse_input
from orchestrator.ingress.config import IDEMPOTENCY_KEY, IngressConfig, preferred_wait
from orchestrator.ingress.errors import IngressRefusal
from orchestrator.settings import CoordinatorSettings


def test_the_config_comes_from_the_settings() -> None:
    settings = CoordinatorSettings.from_env(
        {
            "ORCH_INGRESS_WAIT_MS": "2500",
            "ORCH_INGRESS_MAX_BODY_BYTES": "100",
            "ORCH_INGRESS_CORS_ORIGINS": "https://a.example, https://b.example",
        }
    )

    config = IngressConfig.from_settings(settings, flows=[])

    assert (config.wait_ms, config.max_body_bytes) == (2500, 100)
    assert config.cors_origins == ("https://a.example", "https://b.example")
    assert IngressConfig.from_settings(CoordinatorSettings(), flows=[]).cors_origins == ()


def test_a_bad_limit_is_a_setup_error() -> None:
    with pytest.raises(SetupError, match="ORCH_INGRESS_MAX_BODY_BYTES must be at least 1"):
        IngressConfig(max_body_bytes=0)


@pytest.mark.parametrize(
    ("prefer", "seconds"),
    [
        (None, 10.0),
        ("wait=3", 3.0),
        ("respond-async, wait=0.5", 0.5),
        ("handling=lenient; wait=2", 2.0),
        ("wait=100000", 300.0),
        ("wait=soon", 10.0),
        ("wait=-1", 10.0),
        ("return=minimal", 10.0),
    ],
)
def test_prefer_wait(prefer: str | None, seconds: float) -> None:
    assert preferred_wait(prefer, 10.0) == seconds


@pytest.mark.parametrize(
    ("key", "valid"),
    [
        ("order-1", True),
        ("a.b_c:d~e", True),
        ("x" * 200, True),
        ("x" * 201, False),
        ("", False),
        ("has space", False),
        ("a/b", False),
        ("é", False),
        ("order-1\n", False),
    ],
)
def test_idempotency_keys(key: str, valid: bool) -> None:
    assert bool(IDEMPOTENCY_KEY.fullmatch(key)) is valid


def test_a_body_limit_kafka_cannot_carry_stops_the_start() -> None:
    assert IngressConfig().max_body_bytes < 1_048_576 - 16_384
    assert IngressConfig.from_settings(CoordinatorSettings(), flows=[]).max_body_bytes == 1_000_000

    with pytest.raises(SetupError, match="ORCH_INGRESS_MAX_BODY_BYTES is 1048576, but Kafka"):
        IngressConfig(max_body_bytes=1_048_576)


def test_lookup_and_waiter_limits_come_from_the_settings() -> None:
    settings = CoordinatorSettings.from_env(
        {"ORCH_INGRESS_LOOKUP_TIMEOUT_MS": "250", "ORCH_INGRESS_MAX_WAITERS": "7"}
    )

    config = IngressConfig.from_settings(settings, flows=[])

    assert (config.lookup_timeout_ms, config.max_waiters) == (250, 7)
    with pytest.raises(SetupError, match="ORCH_INGRESS_MAX_WAITERS must be at least 1"):
        IngressConfig(max_waiters=0)


def test_the_body_must_be_a_json_object() -> None:
    assert parse_input(b"") == {}
    assert parse_input(b'{"a": 1}') == {"a": 1}
    with pytest.raises(IngressRefusal) as not_json:
        parse_input(b"{nope")
    with pytest.raises(IngressRefusal) as not_object:
        parse_input(b"[1, 2]")

    assert (not_json.value.code, not_json.value.status) == ("ingress.invalid_json", 400)
    assert (not_object.value.code, not_object.value.status) == ("input.invalid", 422)
