"""The service catalog: which services a flow can call, and how to reach them.

Three kinds of service:

- ``http``: called in-process by the built-in HTTP adapter (no Kafka hop);
- ``kafka``: a remote adapter that consumes step commands from a topic and
  publishes replies (see :mod:`handlers.sdk`);
- ``python``: an adapter written with :mod:`handlers.sdk`, loaded in-process.

Strings in ``base_url`` and ``headers`` may use ``${VAR}`` or ``${VAR:-default}``
to read the environment, so secrets stay out of the file.

An HTTP service connects to public addresses only, unless its ``allow`` names the
internal ones it may reach (``allow: {loopback: true}``, ``allow: {networks:
[10.20.0.0/16]}``): see :class:`OutboundAllowance` and :mod:`handlers.outbound`.

A GET operation may declare ``cache: {ttl_ms: ...}``: its ``ok`` answers are kept
for that long, and identical calls in flight at once are made once (see
:mod:`orchestrator.runtime.call_cache`). SDK operations declare the same with
``@service.operation(cache_ttl_ms=...)``; Kafka services are never cached by the
coordinator (a remote adapter owns its own caching).

A service called in-process (``http``, ``python``) may declare ``circuit`` (a
circuit breaker, :class:`CircuitPolicy`), ``rate_limit`` (:class:`RateLimitPolicy`)
and ``max_concurrency`` (see :mod:`orchestrator.runtime.guards`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, IPvAnyNetwork, field_validator

from contracts.base import Contract


class OperationCache(Contract):
    """Keep a read's answers, and share identical reads in flight.

    Only for a safe read (a GET): the catalog refuses it on any other method.
    """

    ttl_ms: int = Field(
        gt=0, description="How long an ok answer is reused, from when it arrived (ms)."
    )


class HttpOperation(Contract):
    """One HTTP call. ``{field}`` placeholders are filled from the step's input.

    In ``path`` and ``query`` values, placeholders are URL-encoded text (a list or
    an object becomes its compact JSON text first; a value of ``.`` or ``..`` is
    percent-encoded so it cannot climb to another route). In ``body``, a string
    that is exactly ``"{field}"`` is replaced by the field's JSON value; other
    strings interpolate text.
    """

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    path: str = Field(pattern=r"^/", description="Path below the service's base_url.")
    query: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = Field(default=None, description="JSON body template; None sends no body.")
    cache: OperationCache | None = Field(
        default=None,
        description=(
            "GET only: reuse ok answers for ttl_ms, and make identical calls in flight once."
        ),
    )

    @field_validator("headers")
    @classmethod
    def _no_host_from_event_data(cls, headers: dict[str, str]) -> dict[str, str]:
        # Event data may fill header values, but not the one that picks the server
        # behind a shared address (virtual hosts, reverse proxies).
        for name, value in headers.items():
            if name.lower() == "host" and "{" in value:
                raise ValueError(
                    "the Host header cannot be filled from the step's input: event data "
                    "never chooses where a call goes; write a fixed Host, or none"
                )
        return headers


class OutboundAllowance(Contract):
    """The internal addresses a service may connect to (all refused by default).

    The address of every connection is checked after DNS resolution, before the
    connection is opened: a host name that resolves to a refused address is refused
    (``http.address_refused``), whatever the name. Public addresses are always allowed.
    """

    loopback: bool = Field(default=False, description="127.0.0.0/8 and ::1.")
    private: bool = Field(
        default=False,
        description="10/8, 172.16/12, 192.168/16, 100.64/10 (CGNAT) and fc00::/7.",
    )
    link_local: bool = Field(
        default=False,
        description="169.254/16, fe80::/10 and fd00:ec2::254 (the cloud metadata addresses).",
    )
    networks: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="CIDR ranges allowed whatever their class, e.g. '10.20.0.0/16'.",
    )


class CircuitPolicy(Contract):
    """When a service's circuit opens, and for how long (see
    :mod:`orchestrator.runtime.circuit`). ``circuit: {}`` turns it on with these defaults.
    """

    failure_ratio: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Open once at least this share of the window's calls failed.",
    )
    min_calls: int = Field(
        default=20, ge=1, description="Calls the window must hold before it can open."
    )
    window_ms: int = Field(
        default=10_000, ge=10, description="How far back calls are counted (ms)."
    )
    open_ms: int = Field(
        default=5_000, gt=0, description="How long it stays open before probing (ms)."
    )
    half_open_calls: int = Field(
        default=1, ge=1, description="Probes that must succeed in a row to close it again."
    )


class RateLimitPolicy(Contract):
    """At most ``burst`` calls at once and ``per_second`` after that (see
    :mod:`orchestrator.runtime.ratelimit`)."""

    per_second: float = Field(gt=0, description="Calls per second, sustained.")
    burst: int = Field(default=1, ge=1, description="Calls that may start at once.")
    max_wait_ms: int = Field(
        default=1_000,
        ge=0,
        description="A call waits at most this long for its turn; one that would wait "
        "longer fails at once (rate_limit.exceeded).",
    )


DEFAULT_MAX_RESPONSE_BYTES = 10 * 1024 * 1024
ENV_OR_HTTP_URL_PATTERN = r"^(https?://|\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\})"
"""What a ``base_url`` in a catalog file may start with: a URL, or an environment
reference (``${VAR}``, ``${VAR:-default}``) that the loader expands before checking."""


class HttpService(Contract):
    """A REST/JSON API called through the shared pooled HTTP client.

    A service that sets ``max_connections`` or ``max_keepalive`` gets a pool of its
    own, so one slow service cannot starve the others of connections.
    """

    kind: Literal["http"]
    base_url: str = Field(
        pattern=r"^https?://",
        # The file may hold an environment reference, expanded before this is checked.
        json_schema_extra={"pattern": ENV_OR_HTTP_URL_PATTERN},
        description="http(s) URL, or an environment reference such as "
        "'${ORDERS_URL:-http://127.0.0.1:8101}'.",
    )
    headers: dict[str, str] = Field(default_factory=dict)
    operations: dict[str, HttpOperation] = Field(min_length=1)
    allow: OutboundAllowance = Field(
        default_factory=OutboundAllowance,
        description="Internal addresses this service may reach; by default only public ones.",
    )
    max_response_bytes: int = Field(
        default=DEFAULT_MAX_RESPONSE_BYTES,
        gt=0,
        description="A longer response body is cut off (http.response_too_large).",
    )
    max_connections: int | None = Field(
        default=None, gt=0, description="A pool of its own with at most this many connections."
    )
    max_keepalive: int | None = Field(
        default=None, gt=0, description="Idle connections its own pool keeps."
    )
    circuit: CircuitPolicy | None = Field(
        default=None,
        description="A circuit breaker for this service; off unless set ({} for the defaults).",
    )
    rate_limit: RateLimitPolicy | None = Field(
        default=None, description="Calls per second to this service; unlimited unless set."
    )
    max_concurrency: int | None = Field(
        default=None, gt=0, description="Calls in flight at most; more wait their turn."
    )


class KafkaService(Contract):
    """A remote adapter reached through its command topic."""

    kind: Literal["kafka"]
    command_topic: str | None = Field(default=None, description="Defaults to '<service>.commands'.")
    operations: list[str] = Field(
        default_factory=list, description="Known operations; empty accepts any name."
    )


class PythonService(Contract):
    """An adapter written with the SDK, loaded in-process from 'module:attribute'."""

    kind: Literal["python"]
    adapter: str = Field(pattern=r"^[\w.]+:[\w.]+$")
    circuit: CircuitPolicy | None = Field(
        default=None,
        description="A circuit breaker for this service; off unless set ({} for the defaults).",
    )
    rate_limit: RateLimitPolicy | None = Field(
        default=None, description="Calls per second to this service; unlimited unless set."
    )
    max_concurrency: int | None = Field(
        default=None, gt=0, description="Calls in flight at most; more wait their turn."
    )


ServiceDefinition = Annotated[
    HttpService | KafkaService | PythonService, Field(discriminator="kind")
]


class ServiceCatalog(Contract):
    """Every service the flows of one deployment may call, by name."""

    schema_version: Literal[1] = 1
    services: dict[str, ServiceDefinition]


def command_topic_of(name: str, service: KafkaService) -> str:
    """Return the command topic of a Kafka service, applying the default."""
    return service.command_topic or f"{name}.commands"
