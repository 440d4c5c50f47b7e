"""Coordinator settings: one pydantic-settings model, defaults that suit production.

Every setting is a field of :class:`CoordinatorSettings`; its environment variable
is ``ORCH_<FIELD>`` (``KAFKA_BOOTSTRAP_SERVERS`` for ``bootstrap_servers``) and the
docstring under it is its description: ``orchestrator config`` prints them with
their values, and the README's configuration table is generated from them
(``python -m orchestrator.commands.config --update README.md`` rewrites it).

Reading the environment is explicit: :meth:`CoordinatorSettings.from_env` is the
only way in. Plain construction (``CoordinatorSettings(partitions=3)``) takes the
defaults and its arguments and nothing else, so a test cannot pick up a stray
``ORCH_*`` variable from the shell that runs it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

from orchestrator.errors import SetupError
from orchestrator.limits import Limits

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
ENV_PREFIX = "ORCH_"
EVENT_LOOPS = ("uvloop", "asyncio")
LOG_FORMATS = ("text", "json")


class CoordinatorSettings(BaseSettings):
    """How the coordinator reaches Kafka, which topics it uses and how it runs.

    Frozen: derive changed settings with :meth:`replace` (validated like a new
    instance). Construction reads no environment; :meth:`from_env` does.
    """

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_prefix=ENV_PREFIX,
        env_ignore_empty=True,
        use_attribute_docstrings=True,
    )

    bootstrap_servers: str = DEFAULT_BOOTSTRAP
    """Kafka brokers, ``host:port`` separated by commas; when set, the demo and the
    tests start no local broker of their own."""
    request_topic: str = "orchestrator.requests"
    """Requests: a flow name and its input."""
    reply_topic: str = "orchestrator.replies"
    """Replies from remote adapters."""
    result_topic: str = "orchestrator.results"
    """Results, one per request."""
    dead_letter_topic: str = "orchestrator.dlq"
    """Dead letters: records that could not be processed, with the reason."""
    changelog_topic: str = "orchestrator.changelog"
    """The saga state log (compacted, as many partitions as the request topic; created
    so, refused otherwise)."""
    group_id: str = "orchestrator"
    """The coordinators' consumer group."""
    group_instance_id: str = ""
    """Static membership: a stable name per instance (e.g. its host or pod name), so a
    restarted instance gets its partitions back without a group-wide rebalance.
    Empty: a dynamic member."""
    session_timeout_ms: int = 10_000
    """How long the group waits for a silent member before moving its partitions."""
    partitions: int = 6
    """Partitions of topics the coordinator creates; replies get as many as requests."""
    create_topics: bool = True
    """Create missing topics at start."""
    replication_factor: int = 0
    """Replicas of created topics; 0 means three, or one per broker on a smaller cluster."""
    max_batch: int = 500
    """Records per poll."""
    max_in_flight: int = 1000
    """Sagas one instance runs at once; beyond it, requests wait in Kafka (replies flow)."""
    max_calls_in_flight: int = 0
    """In-process calls at once before new requests wait in Kafka; 0 means
    ``ORCH_HTTP_MAX_CONNECTIONS``, so a backlog never queues calls for a pooled
    connection (a wait that would count against their timeouts)."""
    commit_interval_ms: int = 200
    """How often finished offsets are committed."""
    gc_freeze_interval_ms: int = 0
    """Experimental, off by default: how often objects that survived are moved out of
    the cyclic collector's sight (``gc.freeze()``), so its pauses stay short with many
    sagas in flight. With 100,000 sagas in flight the longest pause fell from 734 to
    13 ms, but memory grew about 7x (see ``orchestrator.runtime.collector``)."""
    changelog_delay_ms: int = 50
    """Write-behind of the saga changelog: a saga's start and events are written
    together this long after they are decided, and not at all if the saga ends first
    (its finished marker is). 0 writes each at once. Offsets wait for either, so it
    only moves the point from which a crashed saga re-runs (same idempotency keys)."""
    linger_ms: int = 2
    """How long the coordinator's producers wait to fill a batch before sending it
    (commands, results, the changelog); 0 takes about 2 ms off each result at low load
    and costs about a quarter of the throughput under load (see ``bench/README.md``)."""
    fetch_max_wait_ms: int = 20
    """How long the broker may hold a fetch with no data; low keeps reply latency low."""
    http_max_connections: int = 100
    """Pool size of the shared HTTP client."""
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
    """Testing only: kill the process (SIGKILL) at a named crash point (see
    ``orchestrator.runtime.crash``)."""
    source: str = "urn:orchestrator:coordinator"
    """The CloudEvents ``source`` of the events the coordinator writes."""
    event_loop: str = "uvloop"
    """The event loop of long-running commands (``run``, ``adapter``): ``uvloop`` or
    ``asyncio``; the standard loop where uvloop is not installed."""
    log_format: str = "text"
    """Log lines as ``text`` or ``json`` (one JSON object per line); the
    ``--log-format`` option wins."""
    metrics_port: int = 0
    """Port of the Prometheus endpoint (``http://HOST:PORT/metrics``); 0 turns it off.
    With ``run --processes N`` child n (from 1) listens on this port + n - 1."""
    metrics_host: str = "0.0.0.0"
    """Address the Prometheus endpoint listens on."""
    ingress_host: str = "127.0.0.1"
    """Address the HTTP ingress (``orchestrator serve``) listens on; ``--host`` wins."""
    ingress_port: int = 8080
    """Port of the HTTP ingress; ``--port`` wins."""
    ingress_wait_ms: int = 10_000
    """How long ``POST /flows/{name}`` waits for the result before it answers 202 with
    a ``Location`` to fetch it from; a ``Prefer: wait=N`` header (seconds) overrides it."""
    ingress_max_body_bytes: int = 1_000_000
    """Largest request body the ingress reads (413 beyond it); at most 1,015,808 (Kafka's
    1 MiB request limit less room for the event around the body)."""
    ingress_cors_origins: str = ""
    """Origins allowed to call the ingress from a browser, separated by commas
    (``*`` for any); empty turns CORS off."""
    ingress_tokens_file: str = ""
    """A YAML or JSON file mapping flow names (or ``*`` for every flow) to the bearer
    tokens or API keys that may call them; empty: no token is asked for."""
    ingress_lookup_window_ms: int = 3_600_000
    """How far back ``GET /requests/{id}`` (and a retried ``Idempotency-Key``) reads
    the result partition for a result the ingress did not see itself; keep it at
    least ``ORCH_DEDUPE_WINDOW_MS``."""
    timeline_window_ms: int = 3_600_000
    """How far back the timeline page (``/timeline`` of ``orchestrator serve``) reads
    the result topic and the saga changelog when the ingress starts."""
    timeline_max_sagas: int = 1_000
    """Sagas the timeline page keeps (the most recent ones); older ones drop out."""
    ingress_lookup_timeout_ms: int = 5_000
    """How long the ingress reads Kafka back for one result or request before it
    answers "not found yet" (202 if the request is known, else 404)."""
    ingress_max_waiters: int = 10_000
    """Callers one ingress process lets wait for a result at once (long polls, POSTs
    in their wait); more are answered 503 ``ingress.too_many_waiters``."""
    security_protocol: str = "PLAINTEXT"
    """How every Kafka client connects: ``PLAINTEXT``, ``SSL`` (TLS; mTLS with
    ``ORCH_SSL_CERTFILE``), ``SASL_PLAINTEXT`` or ``SASL_SSL`` (a user and password
    over TLS)."""
    sasl_mechanism: str = "SCRAM-SHA-512"
    """The SASL mechanism: ``SCRAM-SHA-512``, ``SCRAM-SHA-256`` or ``PLAIN``."""
    sasl_username: str = ""
    """The SASL user (Kafka's principal ``User:<name>``)."""
    sasl_password: SecretStr = SecretStr("")
    """The SASL password; never logged or printed (``orchestrator config`` masks it)."""
    sasl_password_file: str = ""
    """A file holding the SASL password (e.g. a mounted secret); instead of
    ``ORCH_SASL_PASSWORD``."""
    ssl_cafile: str = ""
    """PEM file of the CA(s) that signed the brokers' certificates; empty trusts the
    system's CAs."""
    ssl_certfile: str = ""
    """PEM file of this client's certificate (chain), for mTLS; with ``ORCH_SSL_KEYFILE``."""
    ssl_keyfile: str = ""
    """PEM file of this client's unencrypted private key (mTLS); empty if the
    certificate file holds it."""
    ssl_check_hostname: bool = True
    """Whether a broker's certificate must name the host connected to."""
    max_request_bytes: int = 1_048_576
    """Largest request record value the coordinator parses; larger ones are refused
    unread (``request.too_large``)."""
    max_input_depth: int = 32
    """How deeply a request's input may nest objects and arrays (``input.too_deep``)."""
    max_input_array_length: int = 10_000
    """Longest array a request's input may hold (``input.too_long``)."""
    max_for_each: int = 10_000
    """Most calls one ``for_each`` step may make (``step.for_each_too_long``)."""
    max_mapping_work: int = 250_000
    """Work budget of one expression evaluation: the nodes it would visit (a
    projection costs its list's length times its nodes per element) plus the items
    handed to functions, charged before the work is done; past it the saga fails
    with ``step.mapping_budget``."""
    max_result_bytes: int = 1_000_000
    """Largest composed result ``data`` (as JSON); larger fails the saga with
    ``result.too_large``."""

    if not TYPE_CHECKING:
        # Hidden from the type checker so that the pydantic plugin still checks the
        # keyword arguments; at run time a bad value becomes one SetupError sentence.
        def __init__(self, **values: Any) -> None:
            try:
                super().__init__(**values)
            except ValidationError as error:
                raise SetupError(_sentence(error)) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only the arguments: the environment is read by from_env, on purpose.
        return (init_settings,)

    @field_validator("event_loop", "log_format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("security_protocol", "sasl_mechanism", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check(self) -> CoordinatorSettings:
        for name in (
            "partitions",
            "max_in_flight",
            "max_batch",
            "max_request_bytes",
            "max_input_depth",
            "max_input_array_length",
            "max_for_each",
            "max_mapping_work",
            "max_result_bytes",
        ):
            if getattr(self, name) < 1:
                raise SetupError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.cache_max_entries < 0:
            raise SetupError(
                f"cache_max_entries must be 0 (keep no answers) or more, "
                f"got {self.cache_max_entries}."
            )
        if self.event_loop not in EVENT_LOOPS:
            raise SetupError(f"ORCH_EVENT_LOOP must be uvloop or asyncio, got {self.event_loop!r}.")
        if self.log_format not in LOG_FORMATS:
            raise SetupError(f"ORCH_LOG_FORMAT must be text or json, got {self.log_format!r}.")
        if not 0 <= self.metrics_port <= 65535:
            raise SetupError(
                f"ORCH_METRICS_PORT must be a port (1-65535) or 0 (off), got {self.metrics_port}."
            )
        from orchestrator.runtime.crash import CRASH_POINTS

        if self.crash_at and self.crash_at not in CRASH_POINTS:
            raise SetupError(
                f"ORCH_CRASH_AT must be one of {', '.join(sorted(CRASH_POINTS))}, "
                f"got {self.crash_at!r}."
            )
        from orchestrator import kafka_security

        kafka_security.check(self)
        return self

    @property
    def limits(self) -> Limits:
        """The limits the intake and the saga core apply (:mod:`orchestrator.limits`)."""
        return Limits(
            max_request_bytes=self.max_request_bytes,
            max_input_depth=self.max_input_depth,
            max_input_array_length=self.max_input_array_length,
            max_for_each=self.max_for_each,
            max_mapping_work=self.max_mapping_work,
            max_result_bytes=self.max_result_bytes,
        )

    @property
    def calls_limit(self) -> int:
        """In-process calls in flight at which new requests wait."""
        return self.max_calls_in_flight or self.http_max_connections

    @staticmethod
    def env_name(field: str) -> str:
        """The environment variable of setting ``field``."""
        if field == "bootstrap_servers":
            return "KAFKA_BOOTSTRAP_SERVERS"
        return f"{ENV_PREFIX}{field.upper()}"

    @classmethod
    def env_values(cls, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The settings ``environ`` (default ``os.environ``) sets, by field name, as text.

        Unknown ``ORCH_*`` variables and empty values are ignored.
        """
        environ = os.environ if environ is None else environ
        return _EnvironmentSource(cls, environ)()

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> CoordinatorSettings:
        """Defaults, then ``ORCH_*``/``KAFKA_BOOTSTRAP_SERVERS`` variables, then ``overrides``.

        Raises:
            SetupError: A value is not of its setting's kind or out of range; the
                sentence names the variable.
        """
        return cls(**{**cls.env_values(environ), **overrides})

    def to_env(self) -> dict[str, str]:
        """The variables that make :meth:`from_env` give these settings back (for a
        child process: ``orchestrator run`` in a test or a benchmark)."""
        env = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):  # the child needs the secret itself
                value = value.get_secret_value()
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            env[self.env_name(name)] = text
        return env

    def replace(self, **changes: Any) -> CoordinatorSettings:
        """A copy with ``changes`` applied, validated like a new instance."""
        return type(self)(**{**self.model_dump(), **changes})

    def with_topics(self, prefix: str) -> CoordinatorSettings:
        """The same settings with every topic and the group id under ``prefix``."""
        return self.replace(
            request_topic=f"{prefix}.requests",
            reply_topic=f"{prefix}.replies",
            result_topic=f"{prefix}.results",
            dead_letter_topic=f"{prefix}.dlq",
            changelog_topic=f"{prefix}.changelog",
            group_id=f"{prefix}.coordinator",
        )


class _EnvironmentSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping, with
    ``KAFKA_BOOTSTRAP_SERVERS`` (the name every Kafka tool knows) for the brokers."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name == "bootstrap_servers":
            return self.env_vars.get("kafka_bootstrap_servers"), field_name, False
        return super().get_field_value(field, field_name)


def _sentence(error: ValidationError) -> str:
    """One sentence for the first problem in ``error``. A value of the wrong kind is
    named by its variable: text reaches a number or a flag from the environment."""
    first = error.errors()[0]
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, SetupError):
        return str(cause)
    field = str(first["loc"][0]) if first["loc"] else "settings"
    name = CoordinatorSettings.env_name(field)
    got = first.get("input")
    if first["type"] == "extra_forbidden":
        return f"{field} is not a setting; `orchestrator config` lists them."
    if first["type"].startswith("int_"):
        return f"{name} must be a whole number, got {got!r}."
    if first["type"].startswith("bool_"):
        return f"{name} must be true or false, got {got!r}."
    return f"{name} is not valid ({first['msg']}), got {got!r}."
