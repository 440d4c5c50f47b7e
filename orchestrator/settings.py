"""Coordinator settings, with defaults that suit production and overrides from env.

=================================  ==============================  =====================
environment variable               setting                         default
=================================  ==============================  =====================
``KAFKA_BOOTSTRAP_SERVERS``        ``bootstrap_servers``           ``127.0.0.1:9092``
``ORCH_REQUEST_TOPIC``             ``request_topic``               ``orchestrator.requests``
``ORCH_REPLY_TOPIC``               ``reply_topic``                 ``orchestrator.replies``
``ORCH_RESULT_TOPIC``              ``result_topic``                ``orchestrator.results``
``ORCH_DEAD_LETTER_TOPIC``         ``dead_letter_topic``           ``orchestrator.dlq``
``ORCH_GROUP_ID``                  ``group_id``                    ``orchestrator``
``ORCH_PARTITIONS``                ``partitions``                  ``6``
``ORCH_CREATE_TOPICS``             ``create_topics``               ``true``
``ORCH_REPLICATION_FACTOR``        ``replication_factor``          ``0`` (min(3, brokers))
``ORCH_HTTP_MAX_CONNECTIONS``      ``http_max_connections``        ``100``
=================================  ==============================  =====================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from orchestrator.errors import SetupError

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


@dataclass(frozen=True, kw_only=True, slots=True)
class CoordinatorSettings:
    """How the coordinator reaches Kafka and which topics it uses."""

    bootstrap_servers: str = DEFAULT_BOOTSTRAP
    request_topic: str = "orchestrator.requests"
    reply_topic: str = "orchestrator.replies"
    result_topic: str = "orchestrator.results"
    dead_letter_topic: str = "orchestrator.dlq"
    group_id: str = "orchestrator"
    partitions: int = 6
    """Partitions of topics the coordinator creates; replies get as many as requests."""
    create_topics: bool = True
    replication_factor: int = 0
    """Replicas of created topics; 0 means three, or one per broker on a smaller cluster."""
    max_batch: int = 500
    max_in_flight: int = 1000
    """Sagas one instance runs at once; beyond it, requests wait in Kafka (replies flow)."""
    commit_interval_ms: int = 200
    fetch_max_wait_ms: int = 20
    """How long the broker may hold a fetch with no data; low keeps reply latency low."""
    http_max_connections: int = 100
    http_max_keepalive: int = 20
    finished_memory: int = 100_000
    """How many finished request ids are remembered to drop redelivered duplicates."""
    source: str = "urn:orchestrator:coordinator"

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise SetupError(f"partitions must be at least 1, got {self.partitions}.")
        if self.max_in_flight < 1:
            raise SetupError(f"max_in_flight must be at least 1, got {self.max_in_flight}.")
        if self.max_batch < 1:
            raise SetupError(f"max_batch must be at least 1, got {self.max_batch}.")

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> CoordinatorSettings:
        """Defaults, then ``ORCH_*``/``KAFKA_BOOTSTRAP_SERVERS`` variables, then ``overrides``."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        defaults = cls()
        if environ.get("KAFKA_BOOTSTRAP_SERVERS"):
            values["bootstrap_servers"] = environ["KAFKA_BOOTSTRAP_SERVERS"]
        for field in fields(cls):
            raw = environ.get(f"ORCH_{field.name.upper()}")
            if raw is None or field.name == "bootstrap_servers":
                continue
            values[field.name] = _parse(field.name, raw, type(getattr(defaults, field.name)))
        values.update(overrides)
        return cls(**values)

    def with_topics(self, prefix: str) -> CoordinatorSettings:
        """The same settings with every topic and the group id under ``prefix``."""
        return replace(
            self,
            request_topic=f"{prefix}.requests",
            reply_topic=f"{prefix}.replies",
            result_topic=f"{prefix}.results",
            dead_letter_topic=f"{prefix}.dlq",
            group_id=f"{prefix}.coordinator",
        )


def _parse(name: str, raw: str, kind: type) -> Any:
    if kind is bool:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise SetupError(f"ORCH_{name.upper()} must be true or false, got {raw!r}.")
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise SetupError(f"ORCH_{name.upper()} must be a whole number, got {raw!r}.") from None
    return raw
