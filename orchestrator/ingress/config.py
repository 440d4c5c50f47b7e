"""How one ingress behaves: its settings, read once from :class:`CoordinatorSettings`."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from orchestrator.errors import SetupError
from orchestrator.ingress.auth import TokenTable, load_tokens
from orchestrator.settings import CoordinatorSettings

IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9._:~-]{1,200}")
"""What an ``Idempotency-Key`` (a request id) may be: safe in a URL path, a Kafka key
and a CloudEvents id. Use ``fullmatch`` (``$`` would let a trailing newline in)."""

PRODUCER_MAX_REQUEST_BYTES = 1_048_576
"""The largest request the client's producer sends (aiokafka's ``max_request_size``
default, which :class:`~orchestrator.client.OrchestratorClient` keeps)."""

ENVELOPE_MARGIN_BYTES = 32_768
"""Room a request event needs beyond its input: the JSON around it, the request id,
the flow name, the CloudEvents and trace headers and the record batch overhead."""

MAX_PREFER_WAIT_S = 300.0
"""The longest wait a ``Prefer: wait=N`` header can ask for."""


@dataclass(frozen=True, slots=True, kw_only=True)
class IngressConfig:
    """What the ingress needs beyond Kafka's address and topics."""

    wait_ms: int = 10_000
    max_body_bytes: int = 1_000_000
    cors_origins: tuple[str, ...] = ()
    lookup_window_ms: int = 3_600_000
    lookup_timeout_ms: int = 5_000
    max_lookups: int = 16
    """Read-backs of Kafka running or queued at once; more answer "not found yet"."""
    max_waiters: int = 10_000
    tokens: TokenTable = field(default_factory=TokenTable)

    def __post_init__(self) -> None:
        if self.wait_ms < 0:
            raise SetupError(f"ORCH_INGRESS_WAIT_MS must be 0 or more, got {self.wait_ms}.")
        if self.max_body_bytes < 1:
            raise SetupError(
                f"ORCH_INGRESS_MAX_BODY_BYTES must be at least 1, got {self.max_body_bytes}."
            )
        largest = PRODUCER_MAX_REQUEST_BYTES - ENVELOPE_MARGIN_BYTES
        if self.max_body_bytes > largest:
            raise SetupError(
                f"ORCH_INGRESS_MAX_BODY_BYTES is {self.max_body_bytes}, but Kafka requests "
                f"of the ingress are at most {PRODUCER_MAX_REQUEST_BYTES} bytes with the "
                f"event around the body: set it to {largest} or less."
            )
        for name, value in (
            ("ORCH_INGRESS_LOOKUP_TIMEOUT_MS", self.lookup_timeout_ms),
            ("ORCH_INGRESS_MAX_WAITERS", self.max_waiters),
            ("max_lookups", self.max_lookups),
        ):
            if value < 1:
                raise SetupError(f"{name} must be at least 1, got {value}.")

    @classmethod
    def from_settings(cls, settings: CoordinatorSettings, *, flows: Iterable[str]) -> IngressConfig:
        """The ingress settings of ``settings``; reads the tokens file if one is set.

        Raises:
            SetupError: a value is out of range, or the tokens file is unusable.
        """
        origins = tuple(
            origin.strip() for origin in settings.ingress_cors_origins.split(",") if origin.strip()
        )
        return cls(
            wait_ms=settings.ingress_wait_ms,
            max_body_bytes=settings.ingress_max_body_bytes,
            cors_origins=origins,
            lookup_window_ms=settings.ingress_lookup_window_ms,
            lookup_timeout_ms=settings.ingress_lookup_timeout_ms,
            max_waiters=settings.ingress_max_waiters,
            tokens=load_tokens(settings.ingress_tokens_file, flows=flows),
        )


def preferred_wait(prefer: str | None, default_s: float) -> float:
    """Seconds to wait: ``wait=N`` from a ``Prefer`` header (RFC 7240), else ``default_s``.

    Preferences the ingress does not understand are ignored, as RFC 7240 asks.
    """
    if prefer:
        for preference in prefer.split(","):
            for token in preference.split(";"):
                name, _, value = token.strip().partition("=")
                if name.strip().lower() == "wait":
                    try:
                        seconds = float(value.strip().strip('"'))
                    except ValueError:
                        continue
                    if seconds >= 0:
                        return min(seconds, MAX_PREFER_WAIT_S)
    return default_s
