"""A second local broker with a SASL_SSL listener, an mTLS listener and ACLs.

Certificates are made here with ``openssl`` (a CA, the broker's certificate for
127.0.0.1/localhost, a client certificate for mTLS); SCRAM-SHA-512 users are
created when the storage is formatted; ACLs are granted through the broker's
PLAINTEXT listener, whose ``User:ANONYMOUS`` is a super user.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import for_code
from aiokafka.protocol.admin import CreateAclsRequest

# Kafka's ACL codes (org.apache.kafka.common.acl / resource).
TOPIC, GROUP = 2, 3
READ, WRITE, DESCRIBE, DESCRIBE_CONFIGS = 3, 4, 8, 10
ALLOW = 3
LITERAL, PREFIXED = 3, 4


@dataclass(frozen=True, slots=True)
class Certificates:
    """PEM files made by :func:`make_certificates`."""

    ca: Path
    broker_keystore: Path
    client_cert: Path
    client_key: Path


def make_certificates(folder: Path, *, client_cn: str) -> Certificates:
    """A CA, a broker certificate for 127.0.0.1 and localhost, and a client
    certificate with CN ``client_cn``, all signed by the CA."""
    folder.mkdir(parents=True, exist_ok=True)

    def openssl(*arguments: str) -> None:
        subprocess.run(["openssl", *arguments], cwd=folder, check=True, capture_output=True)

    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=orchestrator-test-ca", "-keyout", "ca.key", "-out", "ca.pem",
    )  # fmt: skip
    for name, subject, extension in (
        ("broker", "/CN=localhost", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
        ("client", f"/CN={client_cn}", "extendedKeyUsage=clientAuth"),
    ):
        (folder / f"{name}.ext").write_text(extension + "\n")
        openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", subject,
            "-keyout", f"{name}.key", "-out", f"{name}.csr",
        )  # fmt: skip
        openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem",
        )  # fmt: skip
    keystore = folder / "broker-keystore.pem"
    keystore.write_text((folder / "broker.key").read_text() + (folder / "broker.pem").read_text())
    return Certificates(
        ca=folder / "ca.pem",
        broker_keystore=keystore,
        client_cert=folder / "client.pem",
        client_key=folder / "client.key",
    )


@dataclass(frozen=True, slots=True)
class Grant:
    """One ACL: ``principal`` may do ``operation`` on a topic or group."""

    principal: str
    resource_type: int
    name: str
    operation: int
    pattern: int = LITERAL


async def grant(plaintext_bootstrap: str, grants: list[Grant]) -> None:
    """Create ``grants`` as ALLOW ACLs (through the super-user PLAINTEXT listener)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=plaintext_bootstrap)
    await admin.start()
    try:
        for one in grants:
            request = CreateAclsRequest(
                one.resource_type,
                one.name,
                one.pattern,
                f"User:{one.principal}",
                "*",
                one.operation,
                ALLOW,
            )
            response = await admin._send_request(request)
            for code, message in response.creation_responses:
                if code:
                    raise for_code(code)(message)
    finally:
        await admin.close()
