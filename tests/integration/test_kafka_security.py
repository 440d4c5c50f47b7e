"""Kafka security over a real broker: SASL_SSL with SCRAM-SHA-512, mTLS, ACLs.

One broker for the module (its own, started here and stopped by its pid): a
SASL_SSL listener, an SSL listener that requires a client certificate, and the
StandardAuthorizer. Each principal gets only the ACLs the README lists; a saga
runs end to end with them, and principals without rights, or with a wrong
password, are refused in one sentence by the CLI.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from pydantic import BaseModel, SecretStr

from handlers.sdk import Service
from handlers.worker import build_worker
from orchestrator.kafka_security import client_options, faststream_security
from orchestrator.localkafka import BrokerSettings, SecureListeners, start, stop
from orchestrator.localkafka.ports import pick_free_ports
from orchestrator.runtime.topics import check_topics
from orchestrator.settings import CoordinatorSettings
from tests.integration.saga_flows import FLOW, kafka_service, saga_registry
from tests.integration.secure_kafka import (
    DESCRIBE_CONFIGS,
    GROUP,
    READ,
    TOPIC,
    WRITE,
    Certificates,
    Grant,
    grant,
    make_certificates,
)

pytestmark = pytest.mark.kafka

PASSWORDS = {"admin": "admin-secret", "orch": "orch-secret", "app": "app-secret",
             "worker": "worker-secret", "nobody": "nobody-secret"}  # fmt: skip
MTLS_CN = "orch-mtls"


@dataclass(frozen=True, slots=True)
class SecureBroker:
    plaintext: str
    sasl_ssl: str
    mtls: str
    certificates: Certificates


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    folder = tmp_path_factory.mktemp("secure-kafka")
    certificates = make_certificates(folder / "certs", client_cn=MTLS_CN)
    port, controller, sasl_port, mtls_port = pick_free_ports(4)
    settings = BrokerSettings(
        runtime_dir=folder / "broker",
        port=port,
        controller_port=controller,
        heap_max="512m",
        secure=SecureListeners(
            sasl_port=sasl_port,
            mtls_port=mtls_port,
            keystore=certificates.broker_keystore,
            truststore=certificates.ca,
            scram_users=tuple(PASSWORDS.items()),
        ),
    )
    info = start(settings)
    try:
        yield SecureBroker(
            plaintext=info.bootstrap,
            sasl_ssl=f"127.0.0.1:{sasl_port}",
            mtls=f"127.0.0.1:{mtls_port}",
            certificates=certificates,
        )
    finally:
        stop(info.settings)


def sasl_settings(
    broker: SecureBroker, prefix: str, user: str, **changes: object
) -> CoordinatorSettings:
    values = {
        "bootstrap_servers": broker.sasl_ssl,
        "partitions": 2,
        "commit_interval_ms": 50,
        "security_protocol": "SASL_SSL",
        "sasl_username": user,
        "sasl_password": SecretStr(PASSWORDS[user]),
        "ssl_cafile": str(broker.certificates.ca),
    }
    return CoordinatorSettings(**{**values, **changes}).with_topics(prefix)  # type: ignore[arg-type]


async def create_topics(broker: SecureBroker, settings: CoordinatorSettings, *extra: str) -> None:
    names = [
        settings.request_topic,
        settings.reply_topic,
        settings.changelog_topic,
        settings.result_topic,
        settings.dead_letter_topic,
        *extra,
    ]
    await check_topics(
        broker.plaintext,
        dict.fromkeys(names, settings.partitions),
        compacted=(settings.changelog_topic,),
    )


def orchestrator_grants(user: str, settings: CoordinatorSettings, commands: str) -> list[Grant]:
    """What the README's table gives the coordinator's principal, and nothing more."""
    reads = (settings.request_topic, settings.reply_topic, settings.changelog_topic,
             settings.result_topic)  # fmt: skip
    writes = (settings.result_topic, commands, settings.dead_letter_topic,
              settings.changelog_topic)  # fmt: skip
    return [
        *(Grant(user, TOPIC, name, READ) for name in reads),
        *(Grant(user, TOPIC, name, WRITE) for name in writes),
        Grant(user, TOPIC, settings.changelog_topic, DESCRIBE_CONFIGS),
        Grant(user, GROUP, settings.group_id, READ),
    ]


class Payment(BaseModel):
    id: str


class Settled(BaseModel):
    id: str
    by: str


async def test_a_saga_runs_end_to_end_over_sasl_ssl_with_only_the_granted_acls(
    secure_broker: SecureBroker,
) -> None:
    prefix = f"sec.{uuid.uuid4().hex[:8]}"
    orch = sasl_settings(secure_broker, prefix, "orch")
    commands = f"{prefix}.payments.commands"
    await create_topics(secure_broker, orch, commands)
    await grant(
        secure_broker.plaintext,
        [
            *orchestrator_grants("orch", orch, commands),
            # The adapter worker: its commands and group in, replies and dead letters out.
            Grant("worker", TOPIC, commands, READ),
            Grant("worker", GROUP, f"{prefix}.payments", READ),
            Grant("worker", TOPIC, orch.reply_topic, WRITE),
            Grant("worker", TOPIC, orch.dead_letter_topic, WRITE),
            # The client: requests out, results in.
            Grant("app", TOPIC, orch.request_topic, WRITE),
            Grant("app", TOPIC, orch.result_topic, READ),
        ],
    )
    payments = Service("payments", command_topic=commands)

    @payments.operation
    async def settle(payment: Payment) -> Settled:
        return Settled(id=payment.id, by="worker")

    registry = saga_registry(
        {"payments": kafka_service(commands)},
        {"settle": {"service": "payments", "operation": "settle", "input": {"id": "input.id"}}},
        result="settle",
    )
    worker_settings = sasl_settings(secure_broker, prefix, "worker")
    worker, _ = build_worker(
        payments,
        bootstrap_servers=worker_settings.bootstrap_servers,
        security=faststream_security(worker_settings),
        group_id=f"{prefix}.payments",
        dead_letter_topic=orch.dead_letter_topic,
        reply_topics=[orch.reply_topic],
    )
    await worker.start()
    try:
        # The coordinator runs as "orch"; the client (run_once's) as "app".
        from orchestrator.client import OrchestratorClient
        from orchestrator.runtime.coordinator import SagaCoordinator

        app = sasl_settings(secure_broker, prefix, "app")
        async with (
            SagaCoordinator(registry=registry, settings=orch.replace(create_topics=False)),
            OrchestratorClient(app) as client,
        ):
            result = await client.run(FLOW, {"id": "pay-1"}, request_id="secure-1", timeout_s=60)
    finally:
        await worker.stop()

    assert result["status"] == "completed"
    assert result["data"] == {"id": "pay-1", "by": "worker"}


def cli(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ORCH_", "KAFKA_"))}
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *arguments],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def sentence_of(done: subprocess.CompletedProcess[str]) -> str:
    """The one sentence the command ended with (aiokafka may have logged the
    refusal before it: its log lines are not held back)."""
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert [line for line in lines if line.startswith("error:")] == lines[-1:], done.stderr
    return lines[-1]


def test_a_principal_without_rights_is_refused_in_one_sentence(
    secure_broker: SecureBroker,
) -> None:
    prefix = f"sec.{uuid.uuid4().hex[:8]}"
    nobody = sasl_settings(secure_broker, prefix, "nobody")
    asyncio.run(create_topics(secure_broker, nobody))

    done = cli(nobody.to_env(), "send", FLOW, '{"id": "x"}')

    line = sentence_of(done)
    assert line.startswith(
        f"error: Kafka denied user 'nobody' access to topic '{prefix}.results': grant it Read"
    )
    assert PASSWORDS["nobody"] not in done.stderr + done.stdout


def test_a_wrong_password_is_refused_in_one_sentence(secure_broker: SecureBroker) -> None:
    settings = sasl_settings(secure_broker, "sec.any", "orch")
    env = {**settings.to_env(), "ORCH_SASL_PASSWORD": "not-the-password"}

    done = cli(env, "status", "--timeout", "20")

    assert sentence_of(done) == (
        "error: Kafka refused the credentials of user 'orch' (SASL SCRAM-SHA-512 "
        "authentication failed): check ORCH_SASL_USERNAME and ORCH_SASL_PASSWORD "
        "(or ORCH_SASL_PASSWORD_FILE)."
    )
    assert "not-the-password" not in done.stderr + done.stdout


def test_an_untrusted_broker_certificate_is_refused_in_one_sentence(
    secure_broker: SecureBroker,
) -> None:
    settings = sasl_settings(secure_broker, "sec.any", "orch", ssl_cafile="")

    done = cli(settings.to_env(), "status", "--timeout", "20")

    line = sentence_of(done)
    assert line.startswith(
        f"error: The TLS certificate of Kafka at {secure_broker.sasl_ssl} is not trusted"
    )
    assert line.endswith("set ORCH_SSL_CAFILE to the CA that signed it.")


async def test_mtls_the_client_certificate_is_the_principal(secure_broker: SecureBroker) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    prefix = f"sec.{uuid.uuid4().hex[:8]}"
    topic = f"{prefix}.mtls"
    await check_topics(secure_broker.plaintext, {topic: 1})
    await grant(
        secure_broker.plaintext,
        [Grant(MTLS_CN, TOPIC, topic, WRITE), Grant(MTLS_CN, TOPIC, topic, READ)],
    )
    certs = secure_broker.certificates
    settings = CoordinatorSettings(
        bootstrap_servers=secure_broker.mtls,
        security_protocol="SSL",
        ssl_cafile=str(certs.ca),
        ssl_certfile=str(certs.client_cert),
        ssl_keyfile=str(certs.client_key),
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, **client_options(settings)
    )
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"over mTLS")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        **client_options(settings),
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0)])
        batch = await consumer.getmany(timeout_ms=10_000)
    finally:
        await consumer.stop()
    assert [record.value for records in batch.values() for record in records] == [b"over mTLS"]

    # Without a client certificate the same listener refuses the connection.
    bare = settings.replace(ssl_certfile="", ssl_keyfile="")
    done = cli(bare.to_env(), "status", "--timeout", "20")
    assert sentence_of(done) == (
        f"error: Kafka at {secure_broker.mtls} refused the TLS connection for want of a "
        "client certificate it trusts (sent: none): set ORCH_SSL_CERTFILE and "
        "ORCH_SSL_KEYFILE to one signed by a CA the broker trusts."
    )


async def test_a_coordinator_without_rights_stops_at_start_in_one_sentence(
    secure_broker: SecureBroker,
) -> None:
    from orchestrator.errors import SetupError
    from orchestrator.runtime.coordinator import SagaCoordinator

    prefix = f"sec.{uuid.uuid4().hex[:8]}"
    nobody = sasl_settings(secure_broker, prefix, "nobody")
    await create_topics(secure_broker, nobody)
    registry = saga_registry(
        {"payments": kafka_service(f"{prefix}.c")},
        {"settle": {"service": "payments", "operation": "settle", "input": {"id": "input.id"}}},
    )

    with pytest.raises(SetupError, match=r"^Kafka denied user 'nobody' access to topic 'sec\."):
        await SagaCoordinator(registry=registry, settings=nobody).start()
