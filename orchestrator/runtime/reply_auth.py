"""Authentic replies: a reply proves it answers a step command this saga sent.

Correlation ids are predictable (``<request id>:<call>:<attempt>``), so anyone who
may write to the reply topic could answer a call. Each saga therefore gets a random
secret when it starts (:func:`new_secret`, 128 bits from :mod:`secrets`), kept in
its start record in the changelog, so the saga's next owner (after a restart or a
rebalance) has it too. Every step command carries
``reply_token = HMAC-SHA256(secret, correlation id)`` (cut to 128 bits), and its
reply must echo it; :func:`verify` compares in constant time.

Why a secret per saga rather than one key per deployment: it needs no key to
configure, share between instances or rotate, and it can never be predictable by
default; what one command reveals (its own token) answers only that call, which
whoever reads the command topic could answer first anyway. Its cost: 22 bytes in
each saga's start record, and one HMAC per command and per reply (about 1 µs).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

_SECRET_BYTES = 16
_TOKEN_BYTES = 16


def new_secret() -> str:
    """A fresh random saga secret (URL-safe text, as the changelog stores it)."""
    return secrets.token_urlsafe(_SECRET_BYTES)


def reply_token(secret: str, correlation_id: str) -> str:
    """The token a command with ``correlation_id`` carries, and its reply must echo."""
    digest = hmac.new(secret.encode(), correlation_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:_TOKEN_BYTES]).rstrip(b"=").decode()


def verify(secret: str, correlation_id: str, token: str | None) -> bool:
    """Whether ``token`` is the one the command with ``correlation_id`` carried."""
    if not token:
        return False
    return hmac.compare_digest(reply_token(secret, correlation_id), token)
