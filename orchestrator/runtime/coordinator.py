"""The saga coordinator: the one place that does I/O for the saga core.

It consumes request and reply topics, feeds events to the pure core
(:mod:`orchestrator.saga`), and carries out the actions it returns: in-process
calls, step commands on Kafka, one deadline heap, result events; and it records
every saga in the changelog (:mod:`orchestrator.runtime.changelog`), its memory.

Delivery guarantees encoded here:

- A request's offset is committed once its saga's start is acknowledged in the
  changelog; a reply's once the event it caused is. From then on the changelog,
  not the topic, holds them: a crash or a rebalance restores the saga and resumes
  it without re-running completed calls (calls in flight are re-issued with the
  same idempotency key).
- One request id, one result: duplicates are recognised while the saga runs, while
  its result is on its way, and after (finished markers in the changelog, kept for
  ``dedupe_window_ms``). On restore, the result partition is read back past the
  oldest unfinished saga, so a result published just before a crash is not
  published again.
- A failure inside one saga (a bug, an unencodable value) fails that saga with
  ``orchestrator.internal_error``; it never stops a loop or a partition. A failure
  of the coordinator itself (a loop dies, the changelog cannot be written) ends
  :attr:`SagaCoordinator.failed`, and ``orchestrator run`` exits non-zero.
- Requests, replies and the changelog are co-partitioned (same counts, range
  assignor): the partition a step command names for its reply, and the changelog
  partition of a saga, belong to the instance that runs the saga.
- A reply reaches its saga only if it echoes the ``reply_token`` of the command it
  answers (:mod:`orchestrator.runtime.reply_auth`; the saga's secret is in its start
  record, so it survives a restart); a forged one is dead-lettered
  (``reply.unauthenticated``).

Every coordinator counts its :attr:`SagaCoordinator.metrics` (served at
``/metrics`` when ``metrics_port`` is set); with tracing on (an SDK tracer provider,
see :mod:`handlers.tracing`) each saga keeps its spans in its shell object
(:mod:`orchestrator.runtime.tracing`), and with tracing off it keeps None.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import dataclasses
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError
from opentelemetry.trace import TracerProvider
from pydantic import ValidationError

from contracts import cloudevents
from contracts.events import StepReply
from contracts.flow import FlowDefinition
from handlers.http import build_http_client
from handlers.tracing import TRACEPARENT, provider_of, tracer_of
from orchestrator.errors import FlowLoadError
from orchestrator.flow import CompiledFlow, compile_flow
from orchestrator.flow_files import FlowRegistry
from orchestrator.kafka_security import client_options
from orchestrator.limits import LIMITS
from orchestrator.runtime import changelog
from orchestrator.runtime.adapters import KafkaRoute, build_routes, close_routes
from orchestrator.runtime.changelog import ChangelogWriter, KafkaReader, RestoredPartition
from orchestrator.runtime.collector import CollectorPolicy
from orchestrator.runtime.crash import crash
from orchestrator.runtime.dispatcher import CallDispatcher
from orchestrator.runtime.intake import RejectedRequest, admit, request_id_of
from orchestrator.runtime.lag import measure_lag
from orchestrator.runtime.metrics import CoordinatorMetrics, MetricsServer
from orchestrator.runtime.never_raise import report
from orchestrator.runtime.outbox import Countdown, Outbox
from orchestrator.runtime.partitions import PartitionBook
from orchestrator.runtime.publisher import Publisher
from orchestrator.runtime.records import (
    OutgoingRecord,
    dead_letter_record,
    dead_letter_without_value,
    result_record,
)
from orchestrator.runtime.reply_auth import new_secret, verify
from orchestrator.runtime.topics import check_topics
from orchestrator.runtime.tracing import SagaSpans, SagaTracer
from orchestrator.saga import (
    ArmTimer,
    CallReplied,
    CallTimedOut,
    DispatchCall,
    EventIgnored,
    PublishResult,
    SagaAction,
    SagaEvent,
    SagaState,
    decide,
    parse_correlation_id,
    rejected_result,
    start_saga,
)
from orchestrator.saga.replay import replay
from orchestrator.saga.state import UNDO_SUFFIX
from orchestrator.settings import CoordinatorSettings

logger = logging.getLogger(__name__)

INTERNAL_ERROR = "orchestrator.internal_error"
FLOW_CHANGED = "flow.changed"
_MARKER_SWEEP_MS = 60_000
_PRUNE_TIMERS_AT = 10_000
_LAG_INTERVAL_MS = 1_000

Clock = Callable[[], int]
"""Returns the current time in epoch milliseconds."""

_EPOCH_AT_START_MS = time.time_ns() // 1_000_000
_MONOTONIC_AT_START_NS = time.monotonic_ns()


def system_clock() -> int:
    """Epoch milliseconds that never jump: the epoch at start-up plus monotonic time.

    Deadlines and backoffs are timed on it, so an NTP step cannot fire every
    deadline at once; the epoch reading is only there so times on the wire mean
    something to other hosts.
    """
    return _EPOCH_AT_START_MS + (time.monotonic_ns() - _MONOTONIC_AT_START_NS) // 1_000_000


def _all(callbacks: list[Callable[[], None]]) -> Callable[[], None]:
    if len(callbacks) == 1:
        return callbacks[0]

    def run_all() -> None:
        for callback in callbacks:
            callback()

    return run_all


def _http_client(
    settings: CoordinatorSettings,
    given: httpx.AsyncClient | None,
    provider: TracerProvider | None,
) -> httpx.AsyncClient:
    """The shared client (client spans from aiohttp's hooks when tracing is on), or the
    one given (httpx's instrumentation when tracing is on)."""
    if given is None:
        return build_http_client(
            max_connections=settings.http_max_connections,
            max_keepalive=settings.http_max_keepalive,
            tracer_provider=provider,
        )
    if provider is not None:
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

        HTTPXClientInstrumentor.instrument_client(given, tracer_provider=provider)
    return given


def _where(partition: TopicPartition, offset: int) -> str:
    return f"{partition.topic}[{partition.partition}]@{offset}"


@dataclass(slots=True)
class _Saga:
    state: SagaState
    flow: CompiledFlow
    partition: TopicPartition
    run: int
    """Distinguishes a re-run of the same request id: timers and in-process answers
    of an earlier run (before a rebalance) must not reach this one."""
    events: int = 0
    """Events recorded in the changelog so far (the next one is ``events + 1``)."""
    keys: list[bytes] = field(default_factory=list)
    """Changelog keys of its events (parts included) written so far: tombstoned when
    it ends."""
    staged: _Staged | None = None
    """Records decided but not yet handed to the changelog writer (write-behind);
    None most of the time (a saga in flight costs no empty lists)."""
    trace: SagaSpans | None = None
    """Its open spans; None when tracing is off."""
    reply_secret: str = ""
    """Its random secret (kept in its start record): a step command's reply token
    is derived from it, and a reply must echo the token (:mod:`reply_auth`)."""


@dataclass(slots=True)
class _Staged:
    records: list[changelog.Record] = field(default_factory=list)
    keys: list[bytes] = field(default_factory=list)
    """Event keys among ``records`` (the start record's key is not one)."""
    then: list[Callable[[], None]] = field(default_factory=list)
    """What waits for ``records`` to be acknowledged (offsets to commit)."""


class SagaCoordinator:
    """Runs flows for the requests on one request topic.

    Use as an async context manager, or call :meth:`start` and :meth:`stop`::

        async with SagaCoordinator(registry=load_flows(path), settings=settings) as c:
            await stop_event.wait()   # or: await c.failed

    ``http_client``: a custom client instead of the shared pooled one (httpx's
    instrumentation traces it when tracing is on). ``tracer_provider``: where the
    sagas' spans go (default: the global provider; tracing is off unless that is an
    OpenTelemetry SDK provider, see :func:`handlers.tracing.configure_from_env`).
    """

    def __init__(
        self,
        *,
        registry: FlowRegistry,
        settings: CoordinatorSettings,
        http_client: httpx.AsyncClient | None = None,
        clock: Clock = system_clock,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.registry = registry
        self.settings = settings
        self._clock = clock
        # Tracing is decided once, here: off (None) unless the given or the global
        # provider is an SDK one. Nothing on the hot path asks again.
        provider = provider_of(tracer_provider)
        tracer = tracer_of(provider) if provider is not None else None
        self._tracer = SagaTracer(tracer, settings=settings) if tracer is not None else None
        self._owns_http_client = http_client is None
        self._http = _http_client(settings, http_client, provider)
        self._routes = build_routes(
            registry.catalog, http_client=self._http, tracer_provider=provider
        )
        self.metrics = CoordinatorMetrics()
        """This instance's Prometheus metrics (its own registry)."""
        self._metrics_server = (
            MetricsServer(
                self.metrics.registry, host=settings.metrics_host, port=settings.metrics_port
            )
            if settings.metrics_port
            else None
        )
        self._runs = itertools.count(1)
        self._sagas: dict[str, _Saga] = {}
        self._outbox = Outbox(clock=clock)
        self._partitions = PartitionBook(request_topic=settings.request_topic)
        self._dispatcher = CallDispatcher(
            routes=self._routes,
            settings=settings,
            clock=clock,
            deliver=self._deliver,
            metrics=self.metrics,
            tracer=tracer,
            alive=self._alive,
        )
        cache = self._dispatcher.call_cache
        self.metrics.watch(
            sagas=lambda: len(self._sagas),
            calls=lambda: self._dispatcher.calls_in_flight,
            cache=lambda: {
                "hit": cache.hits,
                "miss": cache.misses,
                "coalesced": cache.coalesced,
                "eviction": cache.evictions,
            },
        )
        self._fingerprints = {
            name: changelog.fingerprint(flow) for name, flow in registry.flows.items()
        }
        self._old_flows: dict[str, CompiledFlow] = {}
        """Flows restored sagas started under, by fingerprint, when they differ from now."""
        self._flows_recorded: set[tuple[int, str]] = set()
        self._staged: dict[str, _Saga] = {}
        """Sagas with records staged for the changelog, flushed together every
        ``changelog_delay_ms``; a saga that ends before then writes none of them."""
        self._flush_handle: asyncio.TimerHandle | None = None
        self._collector = CollectorPolicy(interval_ms=settings.gc_freeze_interval_ms)
        self._full_of_sagas = False
        """Set when sagas reach ``max_in_flight``; cleared when requests flow again."""
        self._finished: dict[int, OrderedDict[str, int]] = {}
        """Finished request ids (and when) per request partition, for dedupe_window_ms."""
        self._owned: set[int] = set()
        """Request partitions restored and served by this instance."""
        self._restoring: set[int] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._producer: AIOKafkaProducer | None = None
        self._state_producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._reader: KafkaReader | None = None
        self._changelog: ChangelogWriter | None = None
        self._running = False
        self._crash_at = settings.crash_at
        self.assigned = asyncio.Event()
        """Set once partitions are assigned and restored (useful in tests)."""
        self._failed: asyncio.Future[None] | None = None
        self.ignored_replies: collections.Counter[str] = collections.Counter()
        """Late or stray replies ignored, by reason (``unknown_saga``, ``finished_call``,
        ``old_attempt``, ``finished_saga``, ``unknown_call``); never a second result."""
        self.restored_sagas = 0
        """Sagas resumed from the changelog since start."""

    @property
    def failed(self) -> asyncio.Future[None]:
        """Ends with the error if the coordinator cannot go on (a loop died, the
        changelog could not be written, a restore failed); with None once stopped."""
        if self._failed is None:
            self._failed = asyncio.get_running_loop().create_future()
        return self._failed

    @property
    def in_flight(self) -> int:
        """Sagas currently running on this instance."""
        return len(self._sagas)

    async def __aenter__(self) -> SagaCoordinator:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Check (and create, if asked) the topics, connect, and start consuming."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        settings = self.settings
        if self._metrics_server is not None:
            self._metrics_server.start()
        await self._check_topics()
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap_servers,
            **client_options(settings),
            acks="all",
            enable_idempotence=True,
            linger_ms=settings.linger_ms,
        )
        await self._producer.start()
        self._outbox.publisher = self._dispatcher.publisher = Publisher(self._producer)
        # The changelog has its own producer: aiokafka keeps one produce request
        # in flight per broker connection, and commands and results must not
        # queue behind state records (they are the latency a client sees).
        self._state_producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap_servers,
            **client_options(settings),
            acks="all",
            enable_idempotence=True,
            linger_ms=settings.linger_ms,
        )
        await self._state_producer.start()
        self._reader = KafkaReader(settings.bootstrap_servers, security=client_options(settings))
        await self._reader.start()
        self._outbox.landed = self._result_landed
        self._changelog = ChangelogWriter(self._state_producer, settings.changelog_topic)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            **client_options(settings),
            group_id=settings.group_id,
            group_instance_id=settings.group_instance_id or None,
            session_timeout_ms=settings.session_timeout_ms,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            partition_assignment_strategy=(RangePartitionAssignor,),
            max_poll_records=settings.max_batch,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
        )
        self._consumer.subscribe(
            [settings.request_topic, settings.reply_topic], listener=_Rebalance(self)
        )
        self._running = True
        # The saga core reads its limits (for_each, mapping work, result size)
        # from the context: every loop that decides, and every task it spawns, runs
        # in one where they are this coordinator's.
        limits = self.settings.limits

        def task(work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
            context = contextvars.copy_context()
            context.run(LIMITS.set, limits)
            return asyncio.create_task(work, name=name, context=context)

        self._loops = [
            task(self._changelog.run(), "coordinator-changelog"),
            task(self._dispatcher.run_deadlines(), "coordinator-deadlines"),
        ]
        await self._consumer.start()
        self._loops += [
            task(self._consume_loop(), "coordinator-consume"),
            task(self._housekeeping_loop(), "coordinator-housekeeping"),
        ]
        for loop in self._loops:
            loop.add_done_callback(self._loop_done)

    async def stop(self) -> None:
        """Stop consuming, let recorded state and results land, commit, leave.

        Sagas still running are not finished here: they are all in the changelog,
        and the next owner of their partitions (this instance after a restart, with
        static membership) resumes them.
        """
        self._running = False
        grace_s = self.settings.shutdown_grace_ms / 1000
        logger.info("stopping: %d sagas in flight are kept in the changelog", len(self._sagas))
        for loop in self._loops:
            if loop.get_name() == "coordinator-consume":
                loop.cancel()
        # No more decisions: in-process answers arriving from now on are dropped
        # (their calls are re-issued, with the same idempotency key, on resume).
        # What was decided so far is written first.
        if self._changelog is not None:
            self._flush_staged()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._hand_over(list(self._sagas.values()), "stopped")
        self._sagas.clear()
        await self._dispatcher.aclose()
        # Answers first: each one that lands records its saga's end in the changelog
        # (and a rejected record's offset waits on that), then the changelog.
        logger.info("stopping: calls cancelled; waiting for results on their way")
        await self._outbox.drain(grace_s)
        logger.info("stopping: flushing the changelog")
        if self._changelog is not None:
            try:
                await asyncio.wait_for(self._changelog.flush(), timeout=grace_s)
            except TimeoutError:
                logger.warning("the changelog did not flush within %.0f s", grace_s)
        logger.info("stopping: state recorded; leaving the group")
        self._dispatcher.closing = True
        if self._changelog is not None:
            self._changelog.close()
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        await self._outbox.aclose()
        if self._consumer is not None:
            await self._partitions.commit(self._consumer)
            await self._consumer.stop()
            self._consumer = None
        logger.info("stopping: left the group; closing connections")
        if self._reader is not None:
            await self._reader.stop()
            self._reader = None
        if self._state_producer is not None:
            await self._state_producer.stop()
            self._state_producer = None
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        await close_routes(self._routes)
        if self._owns_http_client:
            await self._http.aclose()
        if self._metrics_server is not None:
            # Its shutdown waits for the server thread's poll (up to half a second).
            await asyncio.to_thread(self._metrics_server.stop)
        if not self.failed.done():
            self.failed.set_result(None)

    @property
    def metrics_port(self) -> int | None:
        """The port ``/metrics`` is served on, or None when it is off."""
        return None if self._metrics_server is None else self._metrics_server.port

    def _hand_over(self, sagas: list[_Saga], why: str) -> None:
        """End the spans of sagas leaving this instance without a result."""
        if self._tracer is None:
            return
        for saga in sagas:
            if saga.trace is not None:
                saga.trace.end(why)
                saga.trace = None

    async def _check_topics(self) -> None:
        settings = self.settings
        wanted = {
            settings.request_topic: settings.partitions,
            settings.reply_topic: settings.partitions,
            settings.changelog_topic: settings.partitions,
            settings.result_topic: settings.partitions,
            settings.dead_letter_topic: settings.partitions,
        }
        for route in self._routes.values():
            if isinstance(route, KafkaRoute):
                wanted[route.command_topic] = settings.partitions
        await check_topics(
            settings.bootstrap_servers,
            wanted,
            security=client_options(settings),
            create=settings.create_topics,
            replication_factor=settings.replication_factor,
            same_partitions=(
                settings.request_topic,
                settings.reply_topic,
                settings.changelog_topic,
            ),
            at_least=(settings.request_topic, settings.result_topic),
            compacted=(settings.changelog_topic,),
        )

    # -- consuming ---------------------------------------------------------

    def _busy(self) -> bool:
        """Whether new requests must wait in Kafka (sagas, answers or calls at their limit)."""
        if len(self._sagas) + self._outbox.pending >= self.settings.max_in_flight:
            self._full_of_sagas = True
            return True
        return self._dispatcher.calls_in_flight >= self.settings.calls_limit

    async def _consume_loop(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        request_topic = self.settings.request_topic
        while self._running:
            self._partitions.apply_backpressure(consumer, busy=self._busy(), idle=self._idle())
            try:
                batch = await consumer.getmany(timeout_ms=100, max_records=self.settings.max_batch)
            except KafkaError:
                logger.exception("fetching from Kafka failed; retrying")
                await asyncio.sleep(0.5)
                continue
            for partition, records in batch.items():
                if partition.partition not in self._owned:
                    # Revoked, or not yet restored, while the fetch was out.
                    if partition in consumer.assignment():
                        consumer.seek(partition, records[0].offset)
                    continue
                is_request = partition.topic == request_topic
                for record in records:
                    if is_request and self._busy():
                        # Admit only what the downstreams can take: the rest is
                        # fetched again once sagas finish (the partition pauses).
                        consumer.seek(partition, record.offset)
                        break
                    try:
                        if is_request:
                            self._on_request(partition, record)
                        else:
                            self._on_reply(partition, record)
                    except Exception as error:
                        self._internal_error(partition, record, error)

    def _idle(self) -> bool:
        """Whether paused requests may flow again: a quarter of the calls' room is free
        (calls come and go fast; a wide margin would idle them), and, if sagas filled
        their room, half of it is free again.

        The sagas' margin applies only when sagas were the limit: a pause for calls
        must not wait for sagas to drop below half their room, which sagas parked on
        a slow step may never do (requests would wait for ever).
        """
        sagas = len(self._sagas) + self._outbox.pending
        limit = self.settings.max_in_flight
        idle = (
            sagas <= limit // 2 if self._full_of_sagas else sagas < limit
        ) and self._dispatcher.calls_in_flight <= self.settings.calls_limit * 3 // 4
        if idle:
            self._full_of_sagas = False
        return idle

    async def _housekeeping_loop(self) -> None:
        """Commit offsets, forget old finished ids, drop timers of gone sagas."""
        assert self._consumer is not None
        last_sweep = self._clock()
        # Not ``while True``: a cancellation that lands as a commit completes can be
        # lost inside asyncio.wait_for (Python < 3.12), and a stop must not hang.
        last_lag = 0
        while self._running:
            await asyncio.sleep(self.settings.commit_interval_ms / 1000)
            await self._partitions.commit(self._consumer)
            now = self._clock()
            if now - last_lag >= _LAG_INTERVAL_MS:
                last_lag = now
                self._measure_lag(self._consumer)
            self._collector.tick(now)
            if now - last_sweep >= _MARKER_SWEEP_MS:
                last_sweep = now
                self._expire_markers(now)
            if len(self._dispatcher.deadlines) > max(_PRUNE_TIMERS_AT, 4 * len(self._sagas)):
                self._dispatcher.prune(self._alive)

    def _measure_lag(self, consumer: AIOKafkaConsumer) -> None:
        """Consumer lag of the partitions this instance owns (requests and replies).

        Synchronous (:mod:`orchestrator.runtime.lag`): no rebalance can land in the
        middle. The gauge's series are rebuilt from the owned set, so a lost
        partition's series goes however it was lost. Never raises: a metrics
        problem must not end the housekeeping loop.
        """
        try:
            settings = self.settings
            owned = [
                TopicPartition(topic, number)
                for number in sorted(self._owned)
                for topic in (settings.request_topic, settings.reply_topic)
            ]
            lags = measure_lag(consumer, owned)
            self.metrics.set_lags(((tp.topic, tp.partition) for tp in owned), lags)
        except Exception as error:
            report("consumer lag", error)

    def _alive(self, request_id: str, run: int) -> bool:
        saga = self._sagas.get(request_id)
        return saga is not None and saga.run == run

    def _on_request(self, partition: TopicPartition, record: ConsumerRecord[Any, Any]) -> None:
        offsets = self._partitions.track(partition, record.offset)
        headers = cloudevents.headers_to_dict(record.headers)
        decision = admit(
            value=record.value,
            key=record.key,
            headers=headers,
            registry=self.registry,
            limits=self.settings.limits,
        )
        if isinstance(decision, RejectedRequest):
            self._reject(partition, record, decision)
            return
        request_id = decision.request_id
        if self._answered(request_id, partition.partition):
            # The original's start is recorded (or its record, earlier in this
            # partition, holds the commit back until it is): nothing to wait for.
            logger.info(
                "dropping duplicate request %s at %s@%d", request_id, partition, record.offset
            )
            offsets.finish(record.offset)
            return
        flow = decision.flow
        state, actions = start_saga(
            flow, request_id=request_id, input=decision.input, now_ms=self._clock()
        )
        reply_secret = new_secret()
        start = {
            "flow": flow.name,
            "fingerprint": self._fingerprints[flow.name],
            "version": flow.version,
            "input": decision.input,
            "started_ms": state.started_ms,
            "reply_secret": reply_secret,
        }
        trace = None
        if self._tracer is not None:
            # Never raises (a tracing failure leaves the saga untraced), and runs
            # before the saga exists: nothing here can leave a saga without a result.
            trace = self._tracer.request(
                flow=flow.name,
                request_id=request_id,
                headers=headers,
                partition=partition.partition,
                offset=record.offset,
            )
            if trace is not None and TRACEPARENT in headers:
                # So that a resumed saga stays in the request's trace.
                start[TRACEPARENT] = headers[TRACEPARENT]
        records = changelog.split(changelog.saga_key(request_id), orjson.dumps(start))
        saga = _Saga(
            state=state,
            flow=flow,
            partition=partition,
            run=next(self._runs),
            trace=trace,
            reply_secret=reply_secret,
        )
        flow_records = self._flow_records(partition.partition, flow)
        # From here to the first action nothing raises: a saga that is in
        # ``_sagas`` always gets a result.
        self._sagas[request_id] = saga
        self.metrics.saga_started(flow.name)
        if flow_records:
            # Written at once, never dropped: later sagas' starts name it.
            self._record(partition.partition, flow_records, None)
        offset = record.offset

        def recorded() -> None:
            if self._crash_at == "after-log-before-commit":
                crash(self._crash_at)
            offsets.finish(offset)

        self._stage(saga, records, recorded, event_keys=False)
        self._carry_out_safely(saga, actions)

    def _answered(self, request_id: str, partition: int) -> bool:
        """Whether ``request_id`` runs, is being answered, or finished (within the window)."""
        finished = self._finished.get(partition)
        return (
            request_id in self._sagas
            or self._outbox.answering(request_id)
            or (finished is not None and request_id in finished)
        )

    def _flow_records(self, partition: int, flow: CompiledFlow) -> list[changelog.Record]:
        """The flow's definition, the first time a saga of it is recorded on ``partition``."""
        fingerprint = self._fingerprints.get(flow.name)
        if fingerprint is None or (partition, fingerprint) in self._flows_recorded:
            return []
        self._flows_recorded.add((partition, fingerprint))
        definition = orjson.dumps(flow.definition.model_dump(mode="json"))
        return changelog.split(changelog.flow_key(fingerprint), definition)

    def _record(
        self, partition: int, records: list[changelog.Record], then: Callable[[], None] | None
    ) -> None:
        assert self._changelog is not None
        self._changelog.append(partition, records, then)

    def _stage(
        self,
        saga: _Saga,
        records: list[changelog.Record],
        then: Callable[[], None] | None,
        *,
        event_keys: bool,
    ) -> None:
        """Record ``records`` of ``saga`` soon (write-behind), or at once with no delay.

        Why: most sagas of a composition end within milliseconds. Their start and
        events, written one record each and then tombstoned, were most of the Kafka
        records a saga cost (18 of 21 for order-details). Staged records are handed
        to the writer together every ``changelog_delay_ms``; a saga that ends first
        writes none of them, only its finished marker. ``then`` (an offset to
        commit) still runs only once what the saga caused is acknowledged: its
        staged records, or else its finished marker after its result. A crash
        before either leaves the offset uncommitted, and the request re-runs with
        the same idempotency keys, as it would have before its start was acked.
        """
        delay_ms = self.settings.changelog_delay_ms
        if delay_ms <= 0:
            if event_keys:
                saga.keys.extend(key for key, _ in records)
            self._record(saga.partition.partition, records, then)
            return
        staged = saga.staged
        if staged is None:
            staged = saga.staged = _Staged()
            self._staged[saga.state.request_id] = saga
        staged.records.extend(records)
        if event_keys:
            staged.keys.extend(key for key, _ in records)
        if then is not None:
            staged.then.append(then)
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_later(
                delay_ms / 1000, self._flush_staged
            )

    def _flush_staged(self) -> None:
        """Hand every running saga's staged records to the writer, in order."""
        self._flush_handle = None
        staged, self._staged = self._staged, {}
        for request_id, saga in staged.items():
            records = saga.staged
            saga.staged = None
            if records is None or self._sagas.get(request_id) is not saga:
                continue  # ended (its marker took over) or moved away (re-runs there)
            saga.keys.extend(records.keys)
            then = _all(records.then) if records.then else None
            self._record(saga.partition.partition, records.records, then)

    def _unstage(self, saga: _Saga) -> Callable[[], None] | None:
        """Drop a finished saga's staged records; returns what waited on them."""
        records = saga.staged
        if records is None:
            return None
        saga.staged = None
        self._staged.pop(saga.state.request_id, None)
        return _all(records.then) if records.then else None

    def _internal_error(
        self, partition: TopicPartition, record: ConsumerRecord[Any, Any], error: Exception
    ) -> None:
        # A bug must cost one record, not the partition: dead-letter it (with a
        # failed result if it was a request) and carry on.
        logger.error("unexpected error on %s@%d", partition, record.offset, exc_info=error)
        request_id = None
        if partition.topic == self.settings.request_topic:
            with contextlib.suppress(Exception):
                request_id = request_id_of(
                    record.value, record.key, cloudevents.headers_to_dict(record.headers)
                )
        self._reject(
            partition,
            record,
            RejectedRequest(
                request_id=request_id,
                flow=None,
                code=INTERNAL_ERROR,
                message=f"the coordinator failed on this record: {type(error).__name__}: {error}",
            ),
        )

    def _reject(
        self, partition: TopicPartition, record: ConsumerRecord[Any, Any], rejected: RejectedRequest
    ) -> None:
        logger.warning(
            "rejected request record %s@%d: %s (%s)",
            partition,
            record.offset,
            rejected.code,
            rejected.message,
        )
        offsets = self._partitions.track(partition, record.offset)
        offset = record.offset
        request_id = rejected.request_id
        # A bad duplicate of a request that runs or ran gets no second result.
        answer = request_id is not None and not self._answered(request_id, partition.partition)
        countdown = Countdown(2 if answer else 1, lambda: offsets.finish(offset))
        dead = self._dead_letter(partition, record, code=rejected.code, reason=rejected.message)
        self.metrics.dead_lettered(rejected.code)
        self._outbox.send(
            [dead],
            answers=None,
            fallback=lambda: [dead_letter_without_value(dead)],
            what=f"the dead letter of {_where(partition, offset)}",
            then=countdown.done,
        )
        if answer:
            assert request_id is not None
            result = rejected_result(
                request_id=request_id,
                flow=rejected.flow,
                code=rejected.code,
                message=rejected.message,
                now_ms=self._clock(),
            )
            # Sent on its own: a dead letter that cannot be published must not
            # hold back the answer.
            self._send_result(
                request_id,
                partition.partition,
                [self._result_record(result, partition.partition)],
                flow=rejected.flow,
                then=lambda: self._mark_finished(
                    request_id, partition.partition, [], countdown.done
                ),
            )

    def _dead_letter(
        self,
        partition: TopicPartition,
        record: ConsumerRecord[Any, Any],
        *,
        code: str,
        reason: str,
    ) -> OutgoingRecord:
        return dead_letter_record(
            topic=self.settings.dead_letter_topic,
            key=record.key,
            value=record.value,
            headers=list(record.headers or ()),
            code=code,
            reason=reason,
            origin_topic=partition.topic,
            origin_partition=partition.partition,
            origin_offset=record.offset,
        )

    def _on_reply(self, partition: TopicPartition, record: ConsumerRecord[Any, Any]) -> None:
        offsets = self._partitions.track(partition, record.offset)
        try:
            reply = StepReply.model_validate(orjson.loads(record.value or b""))
            request_id, call, attempt = parse_correlation_id(reply.correlation_id)
        except (orjson.JSONDecodeError, ValidationError, ValueError) as error:
            reason = f"not a valid step reply: {str(error).splitlines()[0]}"
            self._dead_letter_reply(partition, record, code="reply.invalid", reason=reason)
            return
        saga = self._sagas.get(request_id)
        if saga is not None and not verify(
            saga.reply_secret, reply.correlation_id, reply.reply_token
        ):
            # Forged, or from an adapter that does not echo the token: it must not
            # answer the call. (A reply for a saga not running here is ignored
            # below, as a late one: it can change nothing.)
            self._dead_letter_reply(
                partition,
                record,
                code="reply.unauthenticated",
                reason=f"the reply to {reply.correlation_id} does not carry the reply_token "
                "of a command this coordinator sent",
            )
            return
        offset = record.offset
        self._dispatcher.replied(
            request_id,
            call,
            attempt,
            status=reply.status,
            error_code=reply.error.code if reply.error else None,
        )
        if self._tracer is not None:
            saga = self._sagas.get(request_id)
            if saga is not None and saga.trace is not None:
                saga.trace.reply_received(
                    call=call,
                    attempt=attempt,
                    headers=cloudevents.headers_to_dict(record.headers),
                    topic=partition.topic,
                    partition=partition.partition,
                    offset=offset,
                )
        self._deliver(
            request_id,
            CallReplied(
                call=call,
                attempt=attempt,
                status=reply.status,
                at_ms=self._clock(),
                output=reply.output,
                error_code=reply.error.code if reply.error else None,
                error_message=reply.error.message if reply.error else "",
                retry_after_ms=reply.retry_after_ms,
            ),
            recorded=lambda: offsets.finish(offset),
        )

    def _dead_letter_reply(
        self, partition: TopicPartition, record: ConsumerRecord[Any, Any], *, code: str, reason: str
    ) -> None:
        """Dead-letter a reply that must not reach its saga; its offset moves on once
        the dead letter (or its value-less fallback) is written."""
        offsets = self._partitions.track(partition, record.offset)
        logger.warning("dead-lettering reply %s@%d: %s", partition, record.offset, reason)
        dead = self._dead_letter(partition, record, code=code, reason=reason)
        self.metrics.dead_lettered(code)
        offset = record.offset
        self._outbox.send(
            [dead],
            answers=None,
            fallback=lambda: [dead_letter_without_value(dead)],
            what=f"the dead letter of {_where(partition, offset)}",
            then=lambda: offsets.finish(offset),
        )

    # -- carrying out actions ----------------------------------------------

    def _deliver(
        self,
        request_id: str,
        event: SagaEvent,
        *,
        run: int | None = None,
        recorded: Callable[[], None] | None = None,
    ) -> None:
        """Apply ``event`` to its saga, record it, carry out what follows.

        ``recorded`` runs once the event is acknowledged in the changelog, or at once
        if it changed nothing (a late reply, a saga that is gone).
        """
        saga = self._sagas.get(request_id)
        if saga is None or (run is not None and saga.run != run):
            # A late answer for a saga that finished, moved away, or re-ran.
            if isinstance(event, CallReplied):
                self._ignored(request_id, "unknown_saga", event.call)
            if recorded is not None:
                recorded()
            return
        try:
            _, actions = decide(saga.flow, saga.state, event)
            if saga.trace is not None and isinstance(event, CallReplied | CallTimedOut):
                saga.trace.call_ended(event)
            if all(isinstance(action, EventIgnored) for action in actions) and actions:
                if recorded is not None:
                    recorded()
            else:
                if self._crash_at == "after-reply-before-log" and isinstance(event, CallReplied):
                    crash(self._crash_at)
                saga.events += 1
                key = changelog.event_key(request_id, saga.events)
                records = changelog.split(key, changelog.encode_event(event))
                self._stage(saga, records, recorded, event_keys=True)
        except Exception as error:
            if recorded is not None:
                recorded()
            self._fail_saga(saga, error)
            return
        self._carry_out_safely(saga, actions)

    def _ignored(self, request_id: str, reason: str, call: str) -> None:
        # Counted for the metrics; logged at debug, once per reply: a late reply
        # is routine after a timeout and must never cost more than this.
        self.ignored_replies[reason] += 1
        self.metrics.ignored(reason)
        logger.debug("ignored a reply for %s call %s: %s", request_id, call, reason)

    def _carry_out_safely(self, saga: _Saga, actions: list[SagaAction]) -> None:
        try:
            for action in actions:
                if isinstance(action, DispatchCall):
                    if action.attempt > 1:
                        self.metrics.retried(action.flow, action.step)
                    elif action.call.endswith(UNDO_SUFFIX):
                        self.metrics.compensating(action.flow, action.step)
                    self._dispatcher.dispatch(
                        action,
                        reply_partition=saga.partition.partition,
                        run=saga.run,
                        trace_context=(
                            None if saga.trace is None else saga.trace.call_dispatched(action)
                        ),
                        reply_secret=saga.reply_secret,
                    )
                    if self._crash_at == "mid-compensation" and action.call.endswith(UNDO_SUFFIX):
                        self._crash_soon()
                elif isinstance(action, ArmTimer):
                    self._dispatcher.arm(action, request_id=saga.state.request_id, run=saga.run)
                elif isinstance(action, PublishResult):
                    self._publish_result(saga, action.result)
                elif isinstance(action, EventIgnored):
                    self._ignored(saga.state.request_id, action.reason, action.call)
        except Exception as error:
            self._fail_saga(saga, error)

    def _crash_soon(self) -> None:
        # After the compensation's command has had a moment to leave, so the
        # crash falls between "undo sent" and "undo answered".
        asyncio.get_running_loop().call_later(0.2, crash, self._crash_at)

    def _fail_saga(self, saga: _Saga, error: Exception) -> None:
        """End a saga the coordinator itself failed on, with one failed result."""
        request_id = saga.state.request_id
        logger.error("saga %s failed inside the coordinator", request_id, exc_info=error)
        if self._sagas.get(request_id) is not saga:
            return  # its result is already on its way
        result = rejected_result(
            request_id=request_id,
            flow=saga.flow.name,
            code=INTERNAL_ERROR,
            message=(
                "the coordinator failed while running this request: "
                f"{type(error).__name__}: {error}"
            ),
            now_ms=self._clock(),
        )
        self._publish_result(saga, result)

    def _result_record(self, result: dict[str, Any], partition: int) -> OutgoingRecord:
        # On the request's partition number, so a restore finds it by reading
        # back that one partition.
        settings = self.settings
        record = result_record(result, topic=settings.result_topic, source=settings.source)
        return dataclasses.replace(record, partition=partition)

    def _publish_result(self, saga: _Saga, result: dict[str, Any]) -> None:
        request_id = saga.state.request_id
        partition = saga.partition.partition
        # Records not yet written are not needed any more: the finished marker
        # replaces them, and what waited on them waits on the marker.
        waiting = self._unstage(saga)
        try:
            records = [self._result_record(result, partition)]
        except (TypeError, ValueError) as error:  # orjson.JSONEncodeError is a TypeError
            logger.error("the result of %s is not encodable: %s", request_id, error)
            records = []
        spans = saga.trace
        if spans is not None:
            # Never raises (tracing failures drop the trace); done before the saga
            # is removed, so nothing sits between its removal and its publish.
            trace_headers = spans.result(
                result, topic=self.settings.result_topic, partition=partition
            )
            records = [
                dataclasses.replace(r, headers=[*r.headers, *trace_headers]) for r in records
            ]

        def sent() -> None:
            self._mark_finished(request_id, partition, saga.keys, waiting)
            if spans is not None:
                spans.result_sent()

        # The saga leaves and its result is handed to the outbox, with nothing in
        # between that could raise: one result, never none.
        del self._sagas[request_id]
        self._dispatcher.cancel(request_id)
        self._send_result(request_id, partition, records, flow=saga.flow.name, then=sent)
        self._count_finished(saga, result)

    def _count_finished(self, saga: _Saga, result: dict[str, Any]) -> None:
        try:
            duration_s = (result["finished_at_ms"] - result["started_at_ms"]) / 1000
            self.metrics.saga_finished(
                saga.flow.name,
                status=result["status"],
                complete=result["complete"],
                duration_s=duration_s,
            )
        except Exception as error:
            report("metrics (saga_finished)", error)

    def _send_result(
        self,
        request_id: str,
        partition: int,
        records: list[OutgoingRecord],
        *,
        flow: str | None,
        then: Callable[[], None],
    ) -> None:
        # If the result cannot be published (not encodable, too large), a small
        # failed result saying so takes its place: one answer, never none.
        def fallback() -> list[OutgoingRecord]:
            failed = rejected_result(
                request_id=request_id,
                flow=flow,
                code=INTERNAL_ERROR,
                message="the composed result could not be published (too large or not encodable)",
                now_ms=self._clock(),
            )
            return [self._result_record(failed, partition)]

        self._outbox.send(
            records or fallback(),
            answers=request_id,
            fallback=fallback if records else None,
            what=f"the result of {request_id}",
            then=then,
        )

    def _mark_finished(
        self,
        request_id: str,
        partition: int,
        keys: list[bytes],
        then: Callable[[], None] | None,
    ) -> None:
        """Record that ``request_id`` has its result: the marker, and tombstones for the rest."""
        if self._crash_at == "after-result-before-log":
            crash(self._crash_at)
        if partition not in self._owned and partition not in self._restoring:
            # The partition moved on while the result was on its way; its new
            # owner reads the result back and records the end itself.
            if then is not None:
                then()
            return
        now = self._clock()
        self._finished.setdefault(partition, OrderedDict())[request_id] = now
        records = changelog.tombstones(keys)
        records.append((changelog.saga_key(request_id), orjson.dumps({"done": now})))
        self._record(partition, records, then)

    def _expire_markers(self, now: int) -> None:
        """Tombstone finished markers older than the dedupe window."""
        horizon = now - self.settings.dedupe_window_ms
        for partition, finished in self._finished.items():
            expired = []
            while finished:
                request_id, at_ms = next(iter(finished.items()))
                if at_ms >= horizon:
                    break
                finished.popitem(last=False)
                expired.append(changelog.saga_key(request_id))
            if expired:
                self._record(partition, changelog.tombstones(expired), None)

    async def _result_landed(self, record: OutgoingRecord, since_ms: int) -> bool:
        assert self._reader is not None
        assert record.partition is not None
        found = await self._reader.keys_since(
            record.topic, record.partition, since_ms - self.settings.readback_margin_ms
        )
        return record.key is not None and record.key.decode() in found

    def _loop_done(self, loop: asyncio.Task[None]) -> None:
        if self._running and not loop.cancelled() and loop.exception() is not None:
            error = loop.exception()
            logger.critical("coordinator loop %s died", loop.get_name(), exc_info=error)
            self._fail(error)

    def _fail(self, error: BaseException | None) -> None:
        if not self.failed.done():
            self.failed.set_exception(error or RuntimeError("the coordinator failed"))

    # -- rebalancing -----------------------------------------------------------

    async def _partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        numbers = {tp.partition for tp in revoked if tp.topic == self.settings.request_topic}
        # 0. What was decided is written, so the next owner resumes from there.
        self._flush_staged()
        # 1. No more decisions for sagas of revoked partitions: nothing new is
        #    recorded or published for them from here on.
        self._owned -= numbers
        for request_id, saga in list(self._sagas.items()):
            if saga.partition.partition in numbers:
                del self._sagas[request_id]
                self._dispatcher.cancel(request_id)
                self._hand_over([saga], "revoked")
        # 2. What they already published or recorded lands (or fails) before the
        #    partitions go: the next owner reads it back. (A stop has done this
        #    already, and its writer is gone.)
        if self._running:
            await self._outbox.drain(self.settings.shutdown_grace_ms / 1000)
            if self._changelog is not None:
                await self._changelog.flush()
        # 3. Then commit, and forget.
        if self._consumer is not None:
            await self._partitions.commit(self._consumer)
        self._partitions.forget(revoked)
        for partition in revoked:
            self.metrics.forget_partition(partition.topic, partition.partition)
        for number in numbers:
            self._finished.pop(number, None)

    async def _partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        assert self._consumer is not None
        numbers = sorted(tp.partition for tp in assigned if tp.topic == self.settings.request_topic)
        # Nothing of these partitions is processed before their sagas are back.
        self._consumer.pause(*assigned)
        started = time.monotonic()
        try:
            await self._restore(numbers)
        finally:
            self._restoring.difference_update(numbers)
            self._consumer.resume(*assigned)
        self._owned.update(numbers)
        if numbers:
            logger.info(
                "restored partitions %s in %.2f s (%d sagas in flight)",
                numbers,
                time.monotonic() - started,
                len(self._sagas),
            )
        if assigned:
            self.assigned.set()

    async def _restore(self, numbers: list[int]) -> None:
        """Rebuild the sagas of ``numbers`` from the changelog before their records flow."""
        assert self._reader is not None
        assert self._consumer is not None
        settings = self.settings
        restored = await self._reader.changelog(settings.changelog_topic, numbers)
        for number in numbers:
            part = restored[number]
            published = await self._published_results(number, part)
            self._flows_recorded.update((number, fp) for fp in part.flows)
            now = self._clock()
            horizon = now - settings.dedupe_window_ms
            finished: OrderedDict[str, int] = OrderedDict()
            expired = []
            for request_id, at_ms in sorted(part.markers.items(), key=lambda item: item[1]):
                if at_ms < horizon:
                    expired.append(changelog.saga_key(request_id))
                else:
                    finished[request_id] = at_ms
            self._finished[number] = finished
            if expired or part.orphans:
                self._record(number, [*changelog.tombstones(expired), *part.orphans], None)
            self._restoring.add(number)  # so finishing a restored saga records it
            for request_id in sorted(published - part.markers.keys() - part.sagas.keys()):
                # A rejected request answered just before a crash.
                self._mark_finished(request_id, number, [], None)
            for request_id, header in part.sagas.items():
                keys = part.keys.get(request_id, [])
                if request_id in published:
                    self._mark_finished(request_id, number, keys, None)
                    continue
                self._resume(number, request_id, header, part, keys)

    async def _published_results(self, number: int, part: RestoredPartition) -> set[str]:
        """Request ids of ``number`` answered since the oldest thing that may be unrecorded."""
        assert self._reader is not None
        assert self._consumer is not None
        settings = self.settings
        candidates = [int(header["started_ms"]) for header in part.sagas.values()]
        request_tp = TopicPartition(settings.request_topic, number)
        committed = await self._consumer.committed(request_tp)
        first = await self._reader.timestamp_at(settings.request_topic, number, committed or 0)
        if first is not None:
            candidates.append(first)
        if not candidates:
            return set()
        since = min(candidates) - settings.readback_margin_ms
        return await self._reader.keys_since(settings.result_topic, number, since)

    def _resume(
        self,
        number: int,
        request_id: str,
        header: dict[str, Any],
        part: RestoredPartition,
        keys: list[bytes],
    ) -> None:
        partition = TopicPartition(self.settings.request_topic, number)
        numbered = part.events.get(request_id, {})
        flow = self._flow_of(header, part)
        if isinstance(flow, str):
            logger.error("cannot resume %s: %s", request_id, flow)
            result = rejected_result(
                request_id=request_id,
                flow=header.get("flow"),
                code=FLOW_CHANGED,
                message=flow,
                now_ms=self._clock(),
            )
            self._send_result(
                request_id,
                number,
                [self._result_record(result, number)],
                flow=header.get("flow"),
                then=lambda: self._mark_finished(request_id, number, keys, None),
            )
            return
        try:
            replayed = replay(
                flow,
                request_id=request_id,
                input=header["input"],
                started_ms=int(header["started_ms"]),
                events=changelog.recorded_events(numbered),
            )
        except Exception as error:
            logger.exception("cannot replay saga %s", request_id)
            state, _ = start_saga(
                flow, request_id=request_id, input=header["input"], now_ms=self._clock()
            )
            saga = _Saga(state, flow, partition, next(self._runs), max(numbered, default=0), keys)
            saga.reply_secret = header.get("reply_secret") or new_secret()
            self._sagas[request_id] = saga
            self._fail_saga(saga, error)
            return
        saga = _Saga(
            state=replayed.state,
            flow=flow,
            partition=partition,
            run=next(self._runs),
            events=max(numbered, default=0),
            keys=list(keys),
            # A saga recorded before replies were authenticated gets a new secret:
            # its calls in flight are re-issued below with tokens made from it.
            reply_secret=header.get("reply_secret") or new_secret(),
        )
        self._sagas[request_id] = saga
        self.restored_sagas += 1
        self.metrics.saga_restored()
        if self._tracer is not None:
            saga.trace = self._tracer.resumed(
                flow=flow.name,
                request_id=request_id,
                partition=number,
                traceparent=header.get(TRACEPARENT),
            )
        if replayed.result is not None:
            self._publish_result(saga, replayed.result)
            return
        now = self._clock()
        actions: list[SagaAction] = [*replayed.timers]
        for call, dispatched_ms in replayed.calls:
            # Re-issued with the same attempt, correlation id and idempotency key,
            # and a full timeout from now.
            timeout_ms = max(call.deadline_ms - dispatched_ms, 1)
            actions.append(dataclasses.replace(call, deadline_ms=now + timeout_ms))
        self._carry_out_safely(saga, actions)

    def _flow_of(self, header: dict[str, Any], part: RestoredPartition) -> CompiledFlow | str:
        """The flow a restored saga started under, or why it cannot be had."""
        name = header.get("flow", "")
        fingerprint = header.get("fingerprint", "")
        current = self.registry.get(name)
        if current is not None and self._fingerprints.get(name) == fingerprint:
            return current
        cached = self._old_flows.get(fingerprint)
        if cached is not None:
            return cached
        definition = part.flows.get(fingerprint)
        if definition is None:
            return (
                f"the saga started under flow '{name}' version {header.get('version')}, "
                "whose definition is not in the changelog"
            )
        try:
            flow = compile_flow(
                FlowDefinition.model_validate(definition),
                catalog=self.registry.catalog,
                source=f"<changelog: {name} {fingerprint}>",
            )
        except (FlowLoadError, ValidationError) as error:
            return (
                f"the saga started under flow '{name}' version {header.get('version')}, "
                f"which no longer loads against the service catalog: {error}"
            )
        self._old_flows[fingerprint] = flow
        # The result names the version that ran, which is the one it started with.
        logger.info(
            "resuming a saga of flow '%s' under the version it started with (%s)",
            name,
            header.get("version"),
        )
        return flow


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """aiokafka swallows errors raised here; a failed restore must stop the process."""

    def __init__(self, coordinator: SagaCoordinator) -> None:
        self._coordinator = coordinator

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        try:
            await self._coordinator._partitions_revoked(revoked)
        except Exception as error:
            logger.critical("handing partitions back failed", exc_info=error)
            self._coordinator._fail(error)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        try:
            await self._coordinator._partitions_assigned(assigned)
        except Exception as error:
            logger.critical("restoring assigned partitions failed", exc_info=error)
            self._coordinator._fail(error)
