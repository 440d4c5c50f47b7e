"""Retry schedules: how many attempts, and how long to wait between them.

The wait is exponential with a cap and *full jitter* (AWS architecture blog,
"Exponential Backoff and Jitter"): before attempt ``n + 1`` the saga waits a
time drawn uniformly from ``[0, min(max_backoff_ms, backoff_ms * multiplier **
(n - 1))]``. The saga core must stay free of randomness, so the draw comes from a
hash of the attempt's correlation id: the same attempt always waits the same
time (replayable), and different calls spread out as random draws would.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from contracts.flow import (
    DEFAULT_BACKOFF_MS,
    DEFAULT_MAX_BACKOFF_MS,
    DEFAULT_MULTIPLIER,
    RetryPolicy,
)

MAX_RETRY_AFTER_MS = 600_000
"""A downstream's ``Retry-After`` is honoured up to ten minutes."""


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """A resolved retry policy: every field set."""

    attempts: int
    backoff_ms: int
    multiplier: float
    max_backoff_ms: int

    def backoff_ms_after(
        self, attempt: int, *, correlation_id: str, retry_after_ms: int | None = None
    ) -> int:
        """How long to wait after ``attempt`` failed before the next one.

        ``retry_after_ms`` (a downstream's ``Retry-After``) is a lower bound.
        """
        cap = min(self.max_backoff_ms, self.backoff_ms * self.multiplier ** (attempt - 1))
        wait = int(cap * _unit_fraction(correlation_id))
        if retry_after_ms is not None:
            wait = max(wait, min(retry_after_ms, MAX_RETRY_AFTER_MS))
        return wait


def resolve_retry(*policies: RetryPolicy | None, attempts: int) -> RetrySchedule:
    """Merge ``policies`` (most specific first) over the built-in defaults."""
    merged: dict[str, int | float] = {
        "attempts": attempts,
        "backoff_ms": DEFAULT_BACKOFF_MS,
        "multiplier": DEFAULT_MULTIPLIER,
        "max_backoff_ms": DEFAULT_MAX_BACKOFF_MS,
    }
    for policy in reversed(policies):
        if policy is None:
            continue
        for name in merged:
            value = getattr(policy, name)
            if value is not None:
                merged[name] = value
    return RetrySchedule(
        attempts=int(merged["attempts"]),
        backoff_ms=int(merged["backoff_ms"]),
        multiplier=float(merged["multiplier"]),
        max_backoff_ms=int(merged["max_backoff_ms"]),
    )


def _unit_fraction(seed: str) -> float:
    """A number in [0, 1) that is a pure function of ``seed``."""
    digest = hashlib.blake2b(seed.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64
