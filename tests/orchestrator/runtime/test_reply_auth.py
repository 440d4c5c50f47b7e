"""Reply tokens: unguessable per saga, stable per call, checked in constant time."""

from __future__ import annotations

from orchestrator.runtime.reply_auth import new_secret, reply_token, verify


def test_a_token_verifies_only_for_its_secret_and_correlation_id() -> None:
    secret = new_secret()
    token = reply_token(secret, "r-1:pay:1")

    assert verify(secret, "r-1:pay:1", token)
    assert reply_token(secret, "r-1:pay:1") == token, "derived again after a restore"
    assert not verify(secret, "r-1:pay:2", token), "another attempt needs its own token"
    assert not verify(new_secret(), "r-1:pay:1", token), "another saga's secret"
    assert not verify(secret, "r-1:pay:1", None)
    assert not verify(secret, "r-1:pay:1", "")
    assert not verify(secret, "r-1:pay:1", token[:-1] + ("A" if token[-1] != "A" else "B"))


def test_secrets_are_random_and_tokens_short() -> None:
    secrets = {new_secret() for _ in range(100)}

    assert len(secrets) == 100
    assert all(len(secret) >= 22 for secret in secrets), "at least 128 bits"
    assert len(reply_token(secrets.pop(), "r-1:pay:1")) == 22
