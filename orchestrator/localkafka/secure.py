"""Secure listeners of a local broker: SASL_SSL with SCRAM users, and mTLS.

A broker started with :class:`SecureListeners` keeps its PLAINTEXT listener (the
readiness probe and an operator's door on 127.0.0.1: its ``User:ANONYMOUS`` is a
super user, as is the controller's) and adds:

- a ``SASL_SSL`` listener: TLS with the given certificate, SCRAM-SHA-512 users
  created when the storage is formatted;
- optionally an ``SSL`` listener that requires a client certificate (mTLS); the
  principal is the certificate's CN (``User:<cn>``);
- Kafka's ``StandardAuthorizer``: a principal without an ACL is refused.

Certificates are PEM files (Kafka reads PEM key stores). The test suite makes
them with ``openssl`` and grants ACLs through the PLAINTEXT listener.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .config import HOST


@dataclass(frozen=True, slots=True)
class SecureListeners:
    """The extra listeners and the users of a local broker.

    Attributes:
        sasl_port: Port of the SASL_SSL listener on 127.0.0.1.
        keystore: PEM file with the broker's unencrypted private key and its
            certificate (for 127.0.0.1 and localhost).
        truststore: PEM file of the CA that signs client certificates (mTLS).
        scram_users: ``(name, password)`` pairs created as SCRAM-SHA-512 users.
        super_users: Principal names (``User:`` is added) that skip the ACLs.
        mtls_port: Port of an SSL listener that requires a client certificate;
            0: none.
    """

    sasl_port: int
    keystore: Path
    truststore: Path
    scram_users: tuple[tuple[str, str], ...] = ()
    super_users: tuple[str, ...] = ("admin",)
    mtls_port: int = 0

    def listeners(self) -> list[str]:
        """The extra ``name://host:port`` listeners."""
        extra = [f"SASL_SSL://{HOST}:{self.sasl_port}"]
        if self.mtls_port:
            extra.append(f"SSL://{HOST}:{self.mtls_port}")
        return extra

    def properties(self) -> str:
        """The ``server.properties`` lines beyond the listeners themselves."""
        supers = ";".join(["User:ANONYMOUS", *(f"User:{name}" for name in self.super_users)])
        lines = [
            "sasl.enabled.mechanisms=SCRAM-SHA-512",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={self.keystore}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={self.truststore}",
            "listener.name.ssl.ssl.client.auth=required",
            # User:<CN> instead of the certificate's whole distinguished name.
            "ssl.principal.mapping.rules=RULE:^CN=([^,]+).*$/$1/,DEFAULT",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            f"super.users={supers}",
            "allow.everyone.if.no.acl.found=false",
        ]
        return "\n".join(lines) + "\n"

    def scram_arguments(self) -> list[str]:
        """``kafka-storage format`` arguments that create the SCRAM users."""
        arguments = []
        for name, password in self.scram_users:
            arguments += ["--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]"]
        return arguments
