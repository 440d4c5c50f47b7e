"""Kafka security settings: checks, the aiokafka and FastStream arguments, masking."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
)
from faststream.security import BaseSecurity, SASLScram256, SASLScram512
from pydantic import SecretStr

from orchestrator.commands.config import effective_config, markdown_table
from orchestrator.errors import SetupError
from orchestrator.kafka_refusals import explain
from orchestrator.kafka_security import client_options, faststream_security
from orchestrator.settings import CoordinatorSettings

SASL = {
    "ORCH_SECURITY_PROTOCOL": "sasl_ssl",
    "ORCH_SASL_USERNAME": "orch",
    "ORCH_SASL_PASSWORD": "s3cret-value",
}


def test_plaintext_adds_no_arguments() -> None:
    settings = CoordinatorSettings()
    assert client_options(settings) == {}
    assert faststream_security(settings) is None


def test_sasl_ssl_from_the_environment_gives_aiokafka_its_arguments() -> None:
    settings = CoordinatorSettings.from_env(SASL)

    options = client_options(settings)

    assert settings.security_protocol == "SASL_SSL"
    assert {k: v for k, v in options.items() if k != "ssl_context"} == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "orch",
        "sasl_plain_password": "s3cret-value",
    }
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["ssl_context"].check_hostname is True


def test_faststream_gets_the_matching_security_object() -> None:
    scram512 = faststream_security(CoordinatorSettings.from_env(SASL))
    scram256 = faststream_security(
        CoordinatorSettings.from_env({**SASL, "ORCH_SASL_MECHANISM": "SCRAM-SHA-256"})
    )
    tls = faststream_security(CoordinatorSettings(security_protocol="SSL"))

    assert isinstance(scram512, SASLScram512)
    assert (scram512.username, scram512.password, scram512.use_ssl) == (
        "orch",
        "s3cret-value",
        True,
    )
    assert isinstance(scram256, SASLScram256)
    assert type(tls) is BaseSecurity
    assert tls.use_ssl is True


def test_the_password_can_come_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("from-a-file\n")
    settings = CoordinatorSettings(
        security_protocol="SASL_PLAINTEXT", sasl_username="orch", sasl_password_file=str(secret)
    )
    assert client_options(settings)["sasl_plain_password"] == "from-a-file"
    assert "ssl_context" not in client_options(settings)


@pytest.mark.parametrize(
    ("values", "sentence"),
    [
        ({"security_protocol": "TLS"}, "ORCH_SECURITY_PROTOCOL must be one of PLAINTEXT, SSL"),
        ({"sasl_mechanism": "GSSAPI"}, "ORCH_SASL_MECHANISM must be one of SCRAM-SHA-512"),
        ({"security_protocol": "SASL_SSL"}, "SASL_SSL needs ORCH_SASL_USERNAME"),
        (
            {"sasl_password": SecretStr("a"), "sasl_password_file": "/p"},
            "Set ORCH_SASL_PASSWORD or ORCH_SASL_PASSWORD_FILE, not both.",
        ),
        ({"ssl_keyfile": "/k.pem"}, "ORCH_SSL_KEYFILE is set without ORCH_SSL_CERTFILE"),
    ],
)
def test_impossible_combinations_are_one_sentence(values: dict[str, object], sentence: str) -> None:
    with pytest.raises(SetupError, match=sentence):
        CoordinatorSettings(**values)  # type: ignore[arg-type]


def test_unreadable_files_are_one_sentence(tmp_path: Path) -> None:
    missing = CoordinatorSettings(security_protocol="SSL", ssl_cafile=str(tmp_path / "no.pem"))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    bad = CoordinatorSettings(security_protocol="SSL", ssl_cafile=str(garbage))
    no_password = CoordinatorSettings(
        security_protocol="SASL_SSL",
        sasl_username="orch",
        sasl_password_file=str(tmp_path / "nope"),
    )

    with pytest.raises(SetupError, match=r"ORCH_SSL_CAFILE names .* which does not exist"):
        client_options(missing)
    with pytest.raises(SetupError, match=r"ORCH_SSL_CAFILE .* could not be loaded"):
        client_options(bad)
    with pytest.raises(SetupError, match="Cannot read ORCH_SASL_PASSWORD_FILE"):
        client_options(no_password)


def test_the_password_is_masked_everywhere_but_handed_to_a_child_process() -> None:
    settings = CoordinatorSettings.from_env(SASL)
    shown = {entry.variable: entry.value for entry in effective_config(SASL)}

    assert str(shown["ORCH_SASL_PASSWORD"]) == "**********"
    assert "s3cret-value" not in repr(settings)
    assert "s3cret-value" not in markdown_table()
    # A child (``run --processes``, a test's subprocess) gets the password itself.
    assert CoordinatorSettings.from_env(settings.to_env()) == settings
    assert settings.replace(partitions=3).sasl_password.get_secret_value() == "s3cret-value"


def test_refusals_are_one_sentence_naming_the_principal() -> None:
    settings = CoordinatorSettings.from_env(SASL)

    bad_password = explain(SaslAuthenticationFailed("Authentication failed"), settings)
    topic = explain(TopicAuthorizationFailedError({"orders.results"}), settings)
    group = explain(GroupAuthorizationFailedError("orchestrator"), settings)
    cluster = explain(ClusterAuthorizationFailedError(), settings)

    assert bad_password is not None
    assert bad_password.startswith("Kafka refused the credentials of user 'orch' (SASL ")
    assert topic is not None
    assert topic.startswith("Kafka denied user 'orch' access to topic 'orders.results': grant")
    assert group is not None
    assert "consumer group 'orchestrator'" in group
    assert cluster is not None
    assert "IdempotentWrite" in cluster
    assert explain(ValueError("other"), settings) is None
    for sentence in (bad_password, topic, group, cluster):
        assert "s3cret-value" not in sentence
        assert sentence.count(". ") == 0
