"""The saga coordinator: the one place that does I/O for the saga core.

It consumes request and reply topics, feeds events to the pure core
(:mod:`orchestrator.saga`), and carries out the actions it returns: in-process
calls, step commands on Kafka, one deadline heap, result events.

Delivery guarantees encoded here:

- A request's offset is committed only after its result (or dead letter) is
  acknowledged by Kafka (``acks=all``, idempotent producer). A crash before that
  re-runs the request: never zero results.
- One request id runs one saga: a duplicate arriving while the saga runs, or soon
  after it finished (``finished_memory`` ids are kept), is dropped.
- Requests and replies are consumed by one consumer with the range assignor, and
  both topics have the same partition count, so the partition a step command names
  for its reply is owned by this instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import CommitFailedError, KafkaError
from pydantic import ValidationError

from contracts import cloudevents
from contracts.events import StepReply
from handlers.http import build_http_client
from orchestrator.errors import SetupError
from orchestrator.flow import CompiledFlow
from orchestrator.flow_files import FlowRegistry
from orchestrator.runtime.adapters import InProcessAdapter, KafkaRoute, build_routes
from orchestrator.runtime.intake import RejectedRequest, admit
from orchestrator.runtime.offsets import PartitionOffsets
from orchestrator.runtime.records import (
    OutgoingRecord,
    command_record,
    dead_letter_record,
    result_record,
)
from orchestrator.runtime.timers import DeadlineHeap
from orchestrator.runtime.topics import ensure_topics
from orchestrator.saga import (
    CallReplied,
    CallTimedOut,
    DispatchCall,
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

_ADAPTER_GRACE_MS = 100
_STOP_PUBLISH_WAIT_S = 10.0

Clock = Callable[[], int]
"""Returns the current time in epoch milliseconds."""


def system_clock() -> int:
    """Wall-clock epoch milliseconds."""
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class _Saga:
    state: SagaState
    flow: CompiledFlow
    partition: TopicPartition
    offset: int


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
        self._sagas: dict[str, _Saga] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._offsets: dict[TopicPartition, PartitionOffsets] = {}
        self._deadlines = DeadlineHeap()
        self._deadline_changed = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._publishing: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._running = False
        self.assigned = asyncio.Event()
        """Set once the consumer has been assigned partitions (useful in tests)."""

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
        """Create topics if asked, connect, and start consuming."""
        settings = self.settings
        if settings.create_topics:
            await self._ensure_topics()
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            linger_ms=2,
        )
        await self._producer.start()
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
            asyncio.create_task(self._deadline_loop(), name="coordinator-deadlines"),
        ]

    async def stop(self) -> None:
        """Stop consuming, commit what is finished, and close connections.

        Sagas still running are not finished here: their requests' offsets stay
        uncommitted, so the next owner of the partition runs them again.
        """
        self._running = False
        self._deadline_changed.set()
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        # Results and dead letters already on their way are let through, so
        # their offsets can be committed and no one re-runs those requests.
        if self._publishing:
            await asyncio.wait(self._publishing, timeout=_STOP_PUBLISH_WAIT_S)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._consumer is not None:
            with contextlib.suppress(KafkaError):
                await self._commit()
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()
        if self._owns_http_client:
            await self._http.aclose()

    async def _ensure_topics(self) -> None:
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
        counts = await ensure_topics(
            settings.bootstrap_servers, wanted, replication_factor=settings.replication_factor
        )
        if counts[settings.reply_topic] != counts[settings.request_topic]:
            raise SetupError(
                f"The reply topic {settings.reply_topic!r} has {counts[settings.reply_topic]} "
                f"partitions and the request topic {settings.request_topic!r} has "
                f"{counts[settings.request_topic]}: they must match so replies reach the "
                "instance that runs the saga."
            )

    # -- consuming ---------------------------------------------------------

    async def _consume_loop(self) -> None:
        assert self._consumer is not None
        last_commit = self._clock()
        while self._running:
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
                try:
                    await self._commit()
                except (CommitFailedError, KafkaError) as error:
                    logger.warning("offset commit failed (%s); will retry", error)

    def _track(self, partition: TopicPartition, offset: int) -> PartitionOffsets:
        offsets = self._offsets.get(partition)
        if offsets is None:
            offsets = self._offsets[partition] = PartitionOffsets()
        offsets.track(offset)
        return offsets

    async def _commit(self) -> None:
        if self._consumer is None:
            return
        assignment = self._consumer.assignment()
        due = {}
        for partition, offsets in self._offsets.items():
            position = offsets.committable()
            if position is not None and partition in assignment:
                due[partition] = position
        if due:
            await self._consumer.commit(due)
            for partition, position in due.items():
                self._offsets[partition].committed(position)

    def _on_request(self, partition: TopicPartition, record: ConsumerRecord[Any, Any]) -> None:
        offsets = self._track(partition, record.offset)
        headers = cloudevents.headers_to_dict(record.headers)
        decision = admit(
            value=record.value, key=record.key, headers=headers, registry=self.registry
        )
        if isinstance(decision, RejectedRequest):
            self._reject(partition, record, decision)
            return
        request_id = decision.request_id
        if request_id in self._sagas or request_id in self._finished:
            logger.info(
                "dropping duplicate request %s at %s@%d", request_id, partition, record.offset
            )
            offsets.finish(record.offset)
            return
        state, actions = start_saga(
            decision.flow, request_id=request_id, input=decision.input, now_ms=self._clock()
        )
        saga = _Saga(state=state, flow=decision.flow, partition=partition, offset=record.offset)
        self._sagas[request_id] = saga
        self._carry_out(saga, actions)

    def _internal_error(
        self, partition: TopicPartition, record: ConsumerRecord[Any, Any], error: Exception
    ) -> None:
        # A bug must cost one record, not the partition: dead-letter it (with a
        # failed result if it was a request) and carry on.
        logger.exception("unexpected error on %s@%d", partition, record.offset)
        key = record.key.decode(errors="replace") if record.key else None
        self._reject(
            partition,
            record,
            RejectedRequest(
                request_id=key if partition.topic == self.settings.request_topic else None,
                flow=None,
                code="orchestrator.internal_error",
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
        # A bad duplicate of a request that is running or done must not add a
        # second result: the dead letter is enough.
        if (
            request_id is not None
            and request_id not in self._finished
            and request_id not in self._sagas
        ):
            result = rejected_result(
                request_id=request_id,
                flow=rejected.flow,
                code=rejected.code,
                message=rejected.message,
                now_ms=self._clock(),
            )
            outgoing.append(
                result_record(result, topic=self.settings.result_topic, source=self.settings.source)
            )
            self._remember_finished(request_id)
        self._spawn(self._produce_then_finish(outgoing, partition, record.offset), publishing=True)

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
        offsets = self._track(partition, record.offset)
        try:
            reply = StepReply.model_validate(orjson.loads(record.value or b""))
            request_id, call, attempt = parse_correlation_id(reply.correlation_id)
        except (orjson.JSONDecodeError, ValidationError, ValueError) as error:
            reason = f"not a valid step reply: {str(error).splitlines()[0]}"
            logger.warning("dead-lettering reply %s@%d: %s", partition, record.offset, reason)
            dead = self._dead_letter(partition, record, code="reply.invalid", reason=reason)
            self._spawn(
                self._produce_then_finish([dead], partition, record.offset), publishing=True
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
            ),
        )

    # -- carrying out actions ----------------------------------------------

    def _deliver(self, request_id: str, event: SagaEvent) -> None:
        saga = self._sagas.get(request_id)
        if saga is None:
            return  # a late answer for a saga that finished or moved away
        _, actions = decide(saga.flow, saga.state, event)
        self._carry_out(saga, actions)

    def _carry_out(self, saga: _Saga, actions: list[SagaAction]) -> None:
        for action in actions:
            if isinstance(action, DispatchCall):
                self._dispatch(saga, action)
            elif isinstance(action, PublishResult):
                self._publish_result(saga, action.result)

    def _dispatch(self, saga: _Saga, action: DispatchCall) -> None:
        if self._deadlines.push(
            at_ms=action.deadline_ms,
            request_id=action.request_id,
            call=action.call,
            attempt=action.attempt,
        ):
            self._deadline_changed.set()
        route = self._routes[action.service]
        if isinstance(route, KafkaRoute):
            record = command_record(
                action,
                topic=route.command_topic,
                reply_topic=self.settings.reply_topic,
                reply_partition=saga.partition.partition,
                source=self.settings.source,
                now_ms=self._clock(),
            )
            self._spawn(self._produce([record]))
        else:
            self._spawn(self._call_in_process(route, action))

    async def _call_in_process(self, adapter: InProcessAdapter, action: DispatchCall) -> None:
        # A little past the deadline, so the saga's own timer decides (step.timeout)
        # and the adapter's timeout is only the backstop that frees the connection.
        timeout_s = (max(action.deadline_ms - self._clock(), 1) + _ADAPTER_GRACE_MS) / 1000
        outcome = await adapter.call(
            action.operation,
            action.input,
            idempotency_key=action.idempotency_key,
            timeout_s=timeout_s,
        )
        self._deliver(
            action.request_id,
            CallReplied(
                call=action.call,
                attempt=action.attempt,
                status=outcome.status,
                at_ms=self._clock(),
                output=outcome.output,
                error_code=outcome.error_code,
                error_message=outcome.error_message,
            ),
        )

    def _publish_result(self, saga: _Saga, result: dict[str, Any]) -> None:
        request_id = saga.state.request_id
        del self._sagas[request_id]
        self._remember_finished(request_id)
        record = result_record(
            result, topic=self.settings.result_topic, source=self.settings.source
        )
        self._spawn(
            self._produce_then_finish([record], saga.partition, saga.offset), publishing=True
        )

    def _remember_finished(self, request_id: str) -> None:
        self._finished[request_id] = None
        if len(self._finished) > self.settings.finished_memory:
            self._finished.popitem(last=False)

    async def _produce(self, records: list[OutgoingRecord]) -> None:
        assert self._producer is not None
        deliveries = [
            await self._producer.send(
                record.topic,
                value=record.value,
                key=record.key,
                headers=record.headers,
                partition=record.partition,
            )
            for record in records
        ]
        await asyncio.gather(*deliveries)

    async def _produce_then_finish(
        self, records: list[OutgoingRecord], partition: TopicPartition, offset: int
    ) -> None:
        # The offset becomes committable only once Kafka has acknowledged the
        # records (acks=all): this is what makes the outcome at-least-once.
        await self._produce(records)
        offsets = self._offsets.get(partition)
        if offsets is not None:
            offsets.finish(offset)

    def _spawn(self, work: Coroutine[Any, Any, None], *, publishing: bool = False) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        if publishing:
            self._publishing.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._publishing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("coordinator task failed", exc_info=task.exception())

    # -- deadlines -----------------------------------------------------------

    async def _deadline_loop(self) -> None:
        while self._running:
            now = self._clock()
            for deadline in self._deadlines.pop_due(now):
                self._deliver(
                    deadline.request_id,
                    CallTimedOut(call=deadline.call, attempt=deadline.attempt, at_ms=now),
                )
            next_at = self._deadlines.next_at_ms()
            wait_s = 1.0 if next_at is None else max(next_at - self._clock(), 0) / 1000
            self._deadline_changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._deadline_changed.wait(), timeout=wait_s)

    # -- rebalancing -----------------------------------------------------------

    async def _partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        with contextlib.suppress(CommitFailedError, KafkaError):
            await self._commit()
        # Sagas of a revoked request partition will run again on its new owner
        # (their offsets are not committed); finishing them here would give two results.
        for request_id, saga in list(self._sagas.items()):
            if saga.partition in revoked:
                del self._sagas[request_id]
        for partition in revoked:
            self._offsets.pop(partition, None)

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
