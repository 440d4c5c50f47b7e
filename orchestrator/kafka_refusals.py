"""What Kafka's refusals mean, in one sentence: bad credentials, missing ACLs, TLS.

aiokafka reports a failed SASL or TLS handshake during bootstrap only as "Unable to
bootstrap" (the cause goes to its log), so :func:`diagnose` opens one connection
the same way to learn why; :func:`explain` turns an aiokafka error into the
sentence the CLI prints. The password never appears in either.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING

from orchestrator import kafka_security

if TYPE_CHECKING:
    from orchestrator.settings import CoordinatorSettings

PROBE_TIMEOUT_S = 10.0


def principal(settings: CoordinatorSettings) -> str:
    """Who Kafka sees: the SASL user, the client certificate, or ANONYMOUS."""
    if kafka_security.uses_sasl(settings):
        return f"user {settings.sasl_username!r}"
    if settings.ssl_certfile:
        return f"the client certificate {settings.ssl_certfile!r}"
    return "user ANONYMOUS (no credentials are configured)"


def access_denied(settings: CoordinatorSettings, what: str, grant: str) -> str:
    """The sentence for a missing ACL on ``what`` (e.g. "topic 'x'")."""
    return (
        f"Kafka denied {principal(settings)} access to {what}: grant it {grant} "
        "(kafka-acls --add --allow-principal User:NAME ...) or use a principal that has it."
    )


def explain(error: BaseException, settings: CoordinatorSettings) -> str | None:
    """One sentence for an authentication, authorization or TLS error; None for others."""
    from aiokafka import errors

    if isinstance(error, errors.TopicAuthorizationFailedError):
        topics = _names(error)
        return access_denied(settings, f"topic {topics}", "the operations it needs on it")
    if isinstance(error, errors.GroupAuthorizationFailedError):
        return access_denied(
            settings, f"consumer group {_names(error)}", "Read on the group (ORCH_GROUP_ID)"
        )
    if isinstance(error, errors.ClusterAuthorizationFailedError):
        # Idempotent producers (all of ours) need Write on some topic since Kafka 3.0,
        # IdempotentWrite on the cluster before: a principal with neither lands here.
        return access_denied(
            settings,
            "the cluster (its producers are idempotent)",
            "Write on the topics it writes to, or IdempotentWrite on the cluster",
        )
    if isinstance(error, errors.TransactionalIdAuthorizationFailed):
        return access_denied(settings, "its transactional id", "Write on the transactional id")
    if isinstance(error, errors.SaslAuthenticationFailed | errors.IllegalSaslStateError):
        return (
            f"Kafka refused the credentials of {principal(settings)} (SASL "
            f"{settings.sasl_mechanism} authentication failed): check ORCH_SASL_USERNAME "
            "and ORCH_SASL_PASSWORD (or ORCH_SASL_PASSWORD_FILE)."
        )
    if isinstance(error, errors.UnsupportedSaslMechanismError):
        return (
            f"Kafka does not accept SASL {settings.sasl_mechanism} on "
            f"{settings.bootstrap_servers}: set ORCH_SASL_MECHANISM to one it enables."
        )
    if isinstance(error, ssl.SSLCertVerificationError):
        return (
            f"The TLS certificate of Kafka at {settings.bootstrap_servers} is not trusted "
            f"({error.verify_message}): set ORCH_SSL_CAFILE to the CA that signed it."
        )
    if (
        isinstance(error, ssl.SSLError)
        and "ALERT" in str(error.reason)
        and ("CERTIFICATE" in str(error.reason))
    ):
        # The broker's alert: it wants a client certificate it trusts (mTLS).
        sent = f"the certificate {settings.ssl_certfile!r}" if settings.ssl_certfile else "none"
        return (
            f"Kafka at {settings.bootstrap_servers} refused the TLS connection for want of "
            f"a client certificate it trusts (sent: {sent}): set ORCH_SSL_CERTFILE and "
            "ORCH_SSL_KEYFILE to one signed by a CA the broker trusts."
        )
    if isinstance(error, ssl.SSLError):
        return (
            f"The TLS handshake with Kafka at {settings.bootstrap_servers} failed "
            f"({error.reason or error}): check ORCH_SECURITY_PROTOCOL, and for mTLS "
            "ORCH_SSL_CERTFILE/ORCH_SSL_KEYFILE."
        )
    return None


async def diagnose(settings: CoordinatorSettings) -> BaseException | None:
    """Connect to each bootstrap server as every client would; the first handshake
    error (TLS or SASL), or None when one connects or none answers at all."""
    from aiokafka.conn import create_conn

    options = kafka_security.client_options(settings)
    found: BaseException | None = None
    for address in settings.bootstrap_servers.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                connection = await create_conn(host.strip("[]"), int(port), **options)
        except ssl.SSLError as error:
            found = found or error
            continue
        except Exception as error:  # a probe: any failure is an answer
            # A refused client certificate arrives as a closed connection whose
            # cause is the broker's TLS alert.
            cause = _tls_cause(error) or error
            found = found or (cause if explain(cause, settings) else None)
            continue
        connection.close()
        return None
    return found


def explain_connection_failure(settings: CoordinatorSettings) -> str | None:
    """Why clients could not bootstrap, if a TLS or SASL handshake is the reason
    (for the CLI, outside any event loop)."""
    if settings.security_protocol == "PLAINTEXT":
        return None  # no handshake to blame
    try:
        cause = asyncio.run(diagnose(settings))
    except Exception:  # the original error is reported instead
        return None
    return None if cause is None else explain(cause, settings)


def _tls_cause(error: BaseException) -> ssl.SSLError | None:
    seen: BaseException | None = error
    for _ in range(5):
        if seen is None or isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _names(error: BaseException) -> str:
    found = error.args[0] if error.args else ""
    if isinstance(found, set | frozenset | list | tuple):
        return ", ".join(repr(name) for name in sorted(found))
    return repr(found) if found else "(unnamed)"
