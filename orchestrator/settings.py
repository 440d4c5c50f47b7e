"""Coordinator settings, with defaults that suit production and overrides from env.

=================================  ==============================  =====================
environment variable               setting                         default
=================================  ==============================  =====================
``KAFKA_BOOTSTRAP_SERVERS``        ``bootstrap_servers``           ``127.0.0.1:9092``
``ORCH_REQUEST_TOPIC``             ``request_topic``               ``orchestrator.requests``
``ORCH_REPLY_TOPIC``               ``reply_topic``                 ``orchestrator.replies``
``ORCH_RESULT_TOPIC``              ``result_topic``                ``orchestrator.results``
``ORCH_DEAD_LETTER_TOPIC``         ``dead_letter_topic``           ``orchestrator.dlq``
``ORCH_CHANGELOG_TOPIC``           ``changelog_topic``             ``orchestrator.changelog``
``ORCH_GROUP_ID``                  ``group_id``                    ``orchestrator``
``ORCH_GROUP_INSTANCE_ID``         ``group_instance_id``           (none: dynamic member)
``ORCH_PARTITIONS``                ``partitions``                  ``6``
``ORCH_CREATE_TOPICS``             ``create_topics``               ``true``
``ORCH_REPLICATION_FACTOR``        ``replication_factor``          ``0`` (min(3, brokers))
``ORCH_HTTP_MAX_CONNECTIONS``      ``http_max_connections``        ``100``
``ORCH_CHANGELOG_DELAY_MS``        ``changelog_delay_ms``          ``50``
``ORCH_LINGER_MS``                 ``linger_ms``                   ``2``
``ORCH_GC_FREEZE_INTERVAL_MS``     ``gc_freeze_interval_ms``       ``0`` (off)
``ORCH_CACHE_MAX_ENTRIES``         ``cache_max_entries``           ``10000``
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
    changelog_topic: str = "orchestrator.changelog"
    """The saga state log (compacted, as many partitions as the request topic)."""
    group_id: str = "orchestrator"
    group_instance_id: str = ""
    """Static membership: a stable name per instance (e.g. its host or pod name), so a
    restarted instance gets its partitions back without a group-wide rebalance.
    Empty: a dynamic member."""
    session_timeout_ms: int = 10_000
    """How long the group waits for a silent member before moving its partitions."""
    partitions: int = 6
    """Partitions of topics the coordinator creates; replies get as many as requests."""
    create_topics: bool = True
    replication_factor: int = 0
    """Replicas of created topics; 0 means three, or one per broker on a smaller cluster."""
    max_batch: int = 500
    max_in_flight: int = 1000
    """Sagas one instance runs at once; beyond it, requests wait in Kafka (replies flow)."""
    max_calls_in_flight: int = 0
    """In-process calls at once before new requests wait in Kafka; 0 means
    ``http_max_connections``, so a backlog never queues calls for a pooled connection
    (a wait that would count against their timeouts)."""
    commit_interval_ms: int = 200
    gc_freeze_interval_ms: int = 0
    """Experimental, off by default: how often objects that survived are moved out of
    the cyclic collector's sight (``gc.freeze()``), so its pauses stay short with many
    sagas in flight. It costs memory (see :mod:`orchestrator.runtime.collector`)."""
    changelog_delay_ms: int = 50
    """Write-behind of the saga changelog: a saga's start and events are written
    together this long after they are decided, and not at all if the saga ends first
    (its finished marker is). 0 writes each at once. Offsets wait for either, so it
    only moves the point from which a crashed saga re-runs (same idempotency keys)."""
    linger_ms: int = 2
    """How long the coordinator's producers wait to fill a batch before sending it
    (commands, results, the changelog). Records that come while a send is out are
    batched anyway; the linger adds to every result's latency."""
    fetch_max_wait_ms: int = 20
    """How long the broker may hold a fetch with no data; low keeps reply latency low."""
    http_max_connections: int = 100
    http_max_keepalive: int = 20
    """Idle connections kept by httpx's own pool (a custom client); the default client
    runs on aiohttp's pool, which keeps every connection it opened."""
    cache_max_entries: int = 10_000
    """Answers of cached operations (``cache: {ttl_ms: ...}``) one instance keeps, the
    least recently used dropped first; 0 keeps none (identical calls in flight are
    still made once)."""
    dedupe_window_ms: int = 3_600_000
    """How long a finished request id is remembered (in the changelog) so that a
    duplicate request gets no second result."""
    readback_margin_ms: int = 30_000
    """On restore, results are read back from this long before the oldest saga or
    unfinished request (allows for clock differences between hosts)."""
    shutdown_grace_ms: int = 10_000
    """How long a stop waits for state and results on their way to be acknowledged."""
    crash_at: str = ""
    """Testing only: kill the process (SIGKILL) at a named point, see
    :mod:`orchestrator.runtime.crash`."""
    source: str = "urn:orchestrator:coordinator"

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise SetupError(f"partitions must be at least 1, got {self.partitions}.")
        if self.max_in_flight < 1:
            raise SetupError(f"max_in_flight must be at least 1, got {self.max_in_flight}.")
        if self.max_batch < 1:
            raise SetupError(f"max_batch must be at least 1, got {self.max_batch}.")
        if self.cache_max_entries < 0:
            raise SetupError(
                f"cache_max_entries must be 0 (keep no answers) or more, "
                f"got {self.cache_max_entries}."
            )
        from orchestrator.runtime.crash import CRASH_POINTS

        if self.crash_at and self.crash_at not in CRASH_POINTS:
            raise SetupError(
                f"ORCH_CRASH_AT must be one of {', '.join(sorted(CRASH_POINTS))}, "
                f"got {self.crash_at!r}."
            )

    @property
    def calls_limit(self) -> int:
        """In-process calls in flight at which new requests wait."""
        return self.max_calls_in_flight or self.http_max_connections

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

    def to_env(self) -> dict[str, str]:
        """The variables that make :meth:`from_env` give these settings back (for a
        child process: ``orchestrator run`` in a test or a benchmark)."""
        env = {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers}
        for field in fields(self):
            if field.name == "bootstrap_servers":
                continue
            value = getattr(self, field.name)
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            env[f"ORCH_{field.name.upper()}"] = text
        return env

    def with_topics(self, prefix: str) -> CoordinatorSettings:
        """The same settings with every topic and the group id under ``prefix``."""
        return replace(
            self,
            request_topic=f"{prefix}.requests",
            reply_topic=f"{prefix}.replies",
            result_topic=f"{prefix}.results",
            dead_letter_topic=f"{prefix}.dlq",
            changelog_topic=f"{prefix}.changelog",
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
