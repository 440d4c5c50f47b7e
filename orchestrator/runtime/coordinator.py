"""The saga coordinator: the one place that does I/O for the saga core.

It consumes request and reply topics, feeds events to the pure core
(:mod:`orchestrator.saga`), and carries out the actions it returns: in-process
calls, step commands on Kafka, one deadline heap, result events.

Delivery guarantees encoded here:

- A request's offset is committed only after its result (or dead letter) is
  acknowledged by Kafka (``acks=all``, idempotent producer). A crash before that
  re-runs the request: never zero results.
- One request id runs one saga: a duplicate arriving while the saga runs, while its
  result is being published, or after it was published (``finished_memory`` ids are
  kept) gets no second result.
- A failure inside one saga (a bug, an unencodable value) fails that saga with
  ``orchestrator.internal_error``; it never stops a loop or a partition.
- Requests and replies are consumed by one consumer with the range assignor, and
  both topics have the same partition count, so the partition a step command names
  for its reply is owned by this instance.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from contracts import cloudevents
from contracts.events import StepReply
from handlers.http import build_http_client
from orchestrator.flow import CompiledFlow
from orchestrator.flow_files import FlowRegistry
from orchestrator.runtime.adapters import KafkaRoute, build_routes, close_routes
from orchestrator.runtime.dispatcher import CallDispatcher
from orchestrator.runtime.intake import RejectedRequest, admit
from orchestrator.runtime.offsets import PartitionOffsets
from orchestrator.runtime.outbox import Outbox
from orchestrator.runtime.partitions import PartitionBook
from orchestrator.runtime.publisher import Fallback, Publisher
from orchestrator.runtime.records import (
    OutgoingRecord,
    dead_letter_record,
    result_record,
)
from orchestrator.runtime.topics import check_topics
from orchestrator.saga import (
    ArmTimer,
    CallReplied,
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
from orchestrator.settings import CoordinatorSettings

logger = logging.getLogger(__name__)

_STOP_PUBLISH_WAIT_S = 10.0
_REVOKE_PUBLISH_WAIT_S = 2.0
INTERNAL_ERROR = "orchestrator.internal_error"

Clock = Callable[[], int]
"""Returns the current time in epoch milliseconds."""


def system_clock() -> int:
    """Wall-clock epoch milliseconds."""
    return time.time_ns() // 1_000_000


def _where(partition: TopicPartition, offset: int) -> str:
    return f"{partition.topic}[{partition.partition}]@{offset}"


@dataclass(slots=True)
class _Saga:
    state: SagaState
    flow: CompiledFlow
    partition: TopicPartition
    offset: int
    offsets: PartitionOffsets
    run: int
    """Distinguishes a re-run of the same request id: timers and in-process answers
    of an earlier run (before a rebalance) must not reach this one."""


class SagaCoordinator:
    """Runs flows for the requests on one request topic.

    Use as an async context manager, or call :meth:`start` and :meth:`stop`::

        async with SagaCoordinator(registry=load_flows(path), settings=settings):
            await stop_event.wait()
    """

    def __init__(
        self,
        *,
        registry: FlowRegistry,
        settings: CoordinatorSettings,
        http_client: httpx.AsyncClient | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self.registry = registry
        self.settings = settings
        self._clock = clock
        self._owns_http_client = http_client is None
        self._http = http_client or build_http_client(
            max_connections=settings.http_max_connections,
            max_keepalive=settings.http_max_keepalive,
        )
        self._routes = build_routes(registry.catalog, http_client=self._http)
        self._runs = itertools.count(1)
        self._sagas: dict[str, _Saga] = {}
        self._outbox = Outbox(finished_memory=settings.finished_memory)
        self._partitions = PartitionBook(request_topic=settings.request_topic)
        self._dispatcher = CallDispatcher(
            routes=self._routes, settings=settings, clock=clock, deliver=self._deliver
        )
        self._loops: list[asyncio.Task[None]] = []
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._running = False
        self.assigned = asyncio.Event()
        """Set once the consumer has been assigned partitions (useful in tests)."""
        self.ignored_replies: collections.Counter[str] = collections.Counter()
        """Late or stray replies ignored, by reason (``unknown_saga``, ``finished_call``,
        ``old_attempt``, ``finished_saga``, ``unknown_call``); never a second result."""

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
        await self._check_topics()
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            linger_ms=2,
        )
        await self._producer.start()
        self._outbox.publisher = self._dispatcher.publisher = Publisher(self._producer)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            group_id=settings.group_id,
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
        await self._consumer.start()
        self._running = True
        self._loops = [
            asyncio.create_task(self._consume_loop(), name="coordinator-consume"),
            asyncio.create_task(self._dispatcher.run_deadlines(), name="coordinator-deadlines"),
        ]
        for loop in self._loops:
            loop.add_done_callback(self._loop_done)

    async def stop(self) -> None:
        """Stop consuming, commit what is finished, and close connections.

        Sagas still running are not finished here: their requests' offsets stay
        uncommitted, so the next owner of the partition runs them again.
        """
        self._running = False
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        # Results and dead letters already on their way are let through, so
        # their offsets can be committed and no one re-runs those requests.
        await self._outbox.drain(_STOP_PUBLISH_WAIT_S)
        await self._dispatcher.aclose()
        await self._outbox.aclose()
        if self._consumer is not None:
            await self._partitions.commit(self._consumer)
            await self._consumer.stop()
            self._consumer = None
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        await close_routes(self._routes)
        if self._owns_http_client:
            await self._http.aclose()

    async def _check_topics(self) -> None:
        settings = self.settings
        wanted = {
            settings.request_topic: settings.partitions,
            settings.reply_topic: settings.partitions,
            settings.result_topic: settings.partitions,
            settings.dead_letter_topic: 1,
        }
        for route in self._routes.values():
            if isinstance(route, KafkaRoute):
                wanted[route.command_topic] = settings.partitions
        await check_topics(
            settings.bootstrap_servers,
            wanted,
            create=settings.create_topics,
            replication_factor=settings.replication_factor,
            same_partitions=(settings.request_topic, settings.reply_topic),
        )

    # -- consuming ---------------------------------------------------------

    async def _consume_loop(self) -> None:
        assert self._consumer is not None
        last_commit = self._clock()
        while self._running:
            self._partitions.apply_backpressure(
                self._consumer, in_flight=len(self._sagas), limit=self.settings.max_in_flight
            )
            try:
                batch = await self._consumer.getmany(
                    timeout_ms=100, max_records=self.settings.max_batch
                )
            except KafkaError:
                logger.exception("fetching from Kafka failed; retrying")
                await asyncio.sleep(0.5)
                continue
            for partition, records in batch.items():
                handle = (
                    self._on_request
                    if partition.topic == self.settings.request_topic
                    else self._on_reply
                )
                for record in records:
                    try:
                        handle(partition, record)
                    except Exception as error:
                        self._internal_error(partition, record, error)
            now = self._clock()
            if now - last_commit >= self.settings.commit_interval_ms:
                last_commit = now
                await self._partitions.commit(self._consumer)

    def _on_request(self, partition: TopicPartition, record: ConsumerRecord[Any, Any]) -> None:
        offsets = self._partitions.track(partition, record.offset)
        headers = cloudevents.headers_to_dict(record.headers)
        decision = admit(
            value=record.value, key=record.key, headers=headers, registry=self.registry
        )
        if isinstance(decision, RejectedRequest):
            self._reject(partition, record, decision)
            return
        request_id = decision.request_id
        if request_id in self._sagas or self._outbox.answered(request_id):
            # The original's record holds the partition's commit until it is
            # answered; this one is done once that answer is acknowledged.
            logger.info(
                "dropping duplicate request %s at %s@%d", request_id, partition, record.offset
            )
            self._outbox.finish_duplicate(request_id, offsets=offsets, offset=record.offset)
            return
        state, actions = start_saga(
            decision.flow, request_id=request_id, input=decision.input, now_ms=self._clock()
        )
        saga = _Saga(
            state=state,
            flow=decision.flow,
            partition=partition,
            offset=record.offset,
            offsets=offsets,
            run=next(self._runs),
        )
        self._sagas[request_id] = saga
        self._carry_out_safely(saga, actions)

    def _internal_error(
        self, partition: TopicPartition, record: ConsumerRecord[Any, Any], error: Exception
    ) -> None:
        # A bug must cost one record, not the partition: dead-letter it (with a
        # failed result if it was a request) and carry on.
        logger.error("unexpected error on %s@%d", partition, record.offset, exc_info=error)
        key = record.key.decode(errors="replace") if record.key else None
        self._reject(
            partition,
            record,
            RejectedRequest(
                request_id=key if partition.topic == self.settings.request_topic else None,
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
        outgoing = [
            self._dead_letter(partition, record, code=rejected.code, reason=rejected.message)
        ]
        request_id = rejected.request_id
        answered = (
            request_id is None or request_id in self._sagas or self._outbox.answered(request_id)
        )
        # A bad duplicate of a request that runs or ran gets no second result.
        if not answered:
            assert request_id is not None
            result = rejected_result(
                request_id=request_id,
                flow=rejected.flow,
                code=rejected.code,
                message=rejected.message,
                now_ms=self._clock(),
            )
            outgoing.append(self._result_record(result))
        self._outbox.send_dead_letter(
            outgoing,
            answers=None if answered else request_id,
            offsets=self._partitions.track(partition, record.offset),
            offset=record.offset,
            what=f"the dead letter of {_where(partition, record.offset)}",
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
            logger.warning("dead-lettering reply %s@%d: %s", partition, record.offset, reason)
            dead = self._dead_letter(partition, record, code="reply.invalid", reason=reason)
            self._outbox.send_dead_letter(
                [dead],
                answers=None,
                offsets=offsets,
                offset=record.offset,
                what=f"the dead letter of {_where(partition, record.offset)}",
            )
            return
        # A reply only updates in-memory state; if this instance crashes, the
        # request (whose offset is not committed) runs again and is re-answered.
        offsets.finish(record.offset)
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
        )

    # -- carrying out actions ----------------------------------------------

    def _deliver(self, request_id: str, event: SagaEvent, *, run: int | None = None) -> None:
        saga = self._sagas.get(request_id)
        if saga is None or (run is not None and saga.run != run):
            # A late answer for a saga that finished, moved away, or re-ran.
            if isinstance(event, CallReplied):
                self._ignored(request_id, "unknown_saga", event.call)
            return
        try:
            _, actions = decide(saga.flow, saga.state, event)
        except Exception as error:
            self._fail_saga(saga, error)
            return
        self._carry_out_safely(saga, actions)

    def _ignored(self, request_id: str, reason: str, call: str) -> None:
        # Counted for the metrics; logged at debug, once per reply: a late reply
        # is routine after a timeout and must never cost more than this.
        self.ignored_replies[reason] += 1
        logger.debug("ignored a reply for %s call %s: %s", request_id, call, reason)

    def _carry_out_safely(self, saga: _Saga, actions: list[SagaAction]) -> None:
        try:
            for action in actions:
                if isinstance(action, DispatchCall):
                    self._dispatcher.dispatch(
                        action, reply_partition=saga.partition.partition, run=saga.run
                    )
                elif isinstance(action, ArmTimer):
                    self._dispatcher.arm(action, request_id=saga.state.request_id, run=saga.run)
                elif isinstance(action, PublishResult):
                    self._publish_result(saga, action.result)
                elif isinstance(action, EventIgnored):
                    self._ignored(saga.state.request_id, action.reason, action.call)
        except Exception as error:
            self._fail_saga(saga, error)

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

    def _result_record(self, result: dict[str, Any]) -> OutgoingRecord:
        return result_record(result, topic=self.settings.result_topic, source=self.settings.source)

    def _publish_result(self, saga: _Saga, result: dict[str, Any]) -> None:
        request_id = saga.state.request_id
        del self._sagas[request_id]

        # If the result cannot be published (not encodable, too large), a small
        # failed result saying so takes its place: one answer, never none.
        def fallback() -> list[OutgoingRecord]:
            failed = rejected_result(
                request_id=request_id,
                flow=saga.flow.name,
                code=INTERNAL_ERROR,
                message="the composed result could not be published (too large or not encodable)",
                now_ms=self._clock(),
            )
            return [self._result_record(failed)]

        backup: Fallback | None = fallback
        try:
            records = [self._result_record(result)]
        except (TypeError, ValueError) as error:  # orjson.JSONEncodeError is a TypeError
            logger.error("the result of %s is not encodable: %s", request_id, error)
            records, backup = fallback(), None
        self._outbox.send_result(
            request_id,
            records,
            fallback=backup,
            offsets=saga.offsets,
            offset=saga.offset,
            what=f"the result of {request_id} ({_where(saga.partition, saga.offset)})",
        )

    def _loop_done(self, loop: asyncio.Task[None]) -> None:
        if self._running and not loop.cancelled() and loop.exception() is not None:
            logger.critical("coordinator loop %s died", loop.get_name(), exc_info=loop.exception())

    # -- rebalancing -----------------------------------------------------------

    async def _partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # Let results already on their way land first, so their offsets commit
        # and the next owner does not publish them again.
        await self._outbox.drain(_REVOKE_PUBLISH_WAIT_S)
        if self._consumer is not None:
            await self._partitions.commit(self._consumer)
        # Sagas of a revoked request partition will run again on its new owner
        # (their offsets are not committed); finishing them here would give two results.
        for request_id, saga in list(self._sagas.items()):
            if saga.partition in revoked:
                del self._sagas[request_id]
        self._partitions.forget(revoked)

    def _partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if assigned:
            self.assigned.set()


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(self, coordinator: SagaCoordinator) -> None:
        self._coordinator = coordinator

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._coordinator._partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._coordinator._partitions_assigned(assigned)
