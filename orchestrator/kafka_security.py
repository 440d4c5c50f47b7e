"""Kafka security: the settings' TLS, SASL and mTLS fields as client arguments.

Every Kafka client the orchestrator builds (the coordinator's consumer and
producers, its changelog reader, the topic checks, the client and the ingress, the
timeline reader, ``orchestrator status``, the SDK worker) gets its security from
one call here, so one settings block (``ORCH_SECURITY_PROTOCOL``,
``ORCH_SASL_*``, ``ORCH_SSL_*``) secures them all:

- :func:`client_options` gives aiokafka's keyword arguments
  (``security_protocol``, ``sasl_mechanism``, ``sasl_plain_username``/``_password``,
  ``ssl_context``);
- :func:`faststream_security` gives FastStream's ``security=`` object for the
  SDK worker's ``KafkaBroker``.

A file that cannot be read, or a combination that cannot work (SASL with no user,
a client certificate without its key), is a :class:`SetupError` sentence at start.
The password is never part of a message.
"""

from __future__ import annotations

import ssl
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import SetupError

if TYPE_CHECKING:
    from faststream.security import BaseSecurity

    from orchestrator.settings import CoordinatorSettings

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


def uses_sasl(settings: CoordinatorSettings) -> bool:
    """Whether ``settings`` authenticate with a user name and password."""
    return settings.security_protocol.startswith("SASL_")


def uses_tls(settings: CoordinatorSettings) -> bool:
    """Whether ``settings`` connect over TLS."""
    return settings.security_protocol in ("SSL", "SASL_SSL")


def sasl_password(settings: CoordinatorSettings) -> str:
    """The SASL password: ``ORCH_SASL_PASSWORD_FILE``'s content (one line, trimmed)
    if set, else ``ORCH_SASL_PASSWORD``.

    Raises:
        SetupError: The password file cannot be read.
    """
    if settings.sasl_password_file:
        path = Path(settings.sasl_password_file).expanduser()
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise SetupError(
                f"Cannot read ORCH_SASL_PASSWORD_FILE {str(path)!r}: {error.strerror}."
            ) from None
    return settings.sasl_password.get_secret_value()


def client_options(settings: CoordinatorSettings) -> dict[str, Any]:
    """aiokafka's security keyword arguments for ``settings`` (empty for PLAINTEXT).

    Raises:
        SetupError: A certificate, key or password file cannot be read.
    """
    protocol = settings.security_protocol
    if protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": protocol}
    if uses_tls(settings):
        options["ssl_context"] = ssl_context(settings)
    if uses_sasl(settings):
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        options["sasl_plain_password"] = sasl_password(settings)
    return options


def faststream_security(settings: CoordinatorSettings) -> BaseSecurity | None:
    """FastStream's ``security=`` object for ``settings`` (None for PLAINTEXT).

    Raises:
        SetupError: A certificate, key or password file cannot be read.
    """
    from faststream.security import (
        BaseSecurity,
        SASLPlaintext,
        SASLScram256,
        SASLScram512,
    )

    protocol = settings.security_protocol
    if protocol == "PLAINTEXT":
        return None
    tls = uses_tls(settings)
    context = ssl_context(settings) if tls else None
    if not uses_sasl(settings):
        return BaseSecurity(ssl_context=context, use_ssl=True)
    kind = {
        "SCRAM-SHA-512": SASLScram512,
        "SCRAM-SHA-256": SASLScram256,
        "PLAIN": SASLPlaintext,
    }[settings.sasl_mechanism]
    return kind(settings.sasl_username, sasl_password(settings), ssl_context=context, use_ssl=tls)


def ssl_context(settings: CoordinatorSettings) -> ssl.SSLContext:
    """The TLS context of ``settings``: the CA to trust (the system's when
    ``ORCH_SSL_CAFILE`` is empty), the client certificate and key for mTLS, and
    whether the broker's host name must match its certificate.

    Raises:
        SetupError: A file is missing or is not a certificate or key.
    """
    return _context(
        settings.ssl_cafile,
        settings.ssl_certfile,
        settings.ssl_keyfile,
        settings.ssl_check_hostname,
    )


@lru_cache(maxsize=8)
def _context(cafile: str, certfile: str, keyfile: str, check_hostname: bool) -> ssl.SSLContext:
    # One context per distinct configuration: contexts are safe to share between
    # clients, and loading the files once keeps a process's many clients cheap.
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.check_hostname = check_hostname
    if cafile:
        _load(context.load_verify_locations, "ORCH_SSL_CAFILE", cafile)
    if certfile:
        _load(
            lambda path: context.load_cert_chain(path, keyfile or None),
            "ORCH_SSL_CERTFILE",
            certfile,
        )
    return context


def _load(load: Any, variable: str, path: str) -> None:
    try:
        load(str(Path(path).expanduser()))
    except FileNotFoundError:
        raise SetupError(f"{variable} names {path!r}, which does not exist.") from None
    except (ssl.SSLError, OSError) as error:
        raise SetupError(
            f"{variable} {path!r} could not be loaded ({error}): it must be a PEM file "
            "(and ORCH_SSL_KEYFILE the certificate's unencrypted key)."
        ) from None


def check(settings: CoordinatorSettings) -> None:
    """Refuse a security combination that cannot work, with one sentence.

    Called by the settings' own checks.
    """
    if settings.security_protocol not in PROTOCOLS:
        raise SetupError(
            f"ORCH_SECURITY_PROTOCOL must be one of {', '.join(PROTOCOLS)}, "
            f"got {settings.security_protocol!r}."
        )
    if settings.sasl_mechanism not in MECHANISMS:
        raise SetupError(
            f"ORCH_SASL_MECHANISM must be one of {', '.join(MECHANISMS)}, "
            f"got {settings.sasl_mechanism!r}."
        )
    if uses_sasl(settings) and not settings.sasl_username:
        raise SetupError(
            f"ORCH_SECURITY_PROTOCOL={settings.security_protocol} needs ORCH_SASL_USERNAME "
            "(and ORCH_SASL_PASSWORD or ORCH_SASL_PASSWORD_FILE)."
        )
    if settings.sasl_password.get_secret_value() and settings.sasl_password_file:
        raise SetupError("Set ORCH_SASL_PASSWORD or ORCH_SASL_PASSWORD_FILE, not both.")
    if settings.ssl_keyfile and not settings.ssl_certfile:
        raise SetupError("ORCH_SSL_KEYFILE is set without ORCH_SSL_CERTFILE: set both for mTLS.")
