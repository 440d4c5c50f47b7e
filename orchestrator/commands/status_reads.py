"""The Kafka reads behind ``orchestrator status`` that aiokafka does not offer as such.

aiokafka's admin client answers a group description with the raw protocol response
(member assignments as bytes); the saga count reads the changelog's keys.

On a fresh cluster the group coordinator is not ready for a few seconds (its
internal topic is being created or loaded): those errors are retried for up to
``COORDINATOR_WAIT_S``; any other Kafka error, or one that persists, becomes one
sentence (:class:`~orchestrator.errors.SetupError`), never a traceback.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.errors import (
    CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError,
    KafkaError,
    NotCoordinatorError,
    for_code,
)

from orchestrator.errors import SetupError
from orchestrator.runtime.changelog import read_to_end

if TYPE_CHECKING:
    from orchestrator.commands.status import MemberStatus

NO_GROUP_STATES = ("Dead", "Empty")
COORDINATOR_WAIT_S = 10.0
"""How long a group coordinator that is not ready yet (a fresh cluster) is waited for."""
_RETRY_S = 0.25
NOT_READY = (CoordinatorNotAvailableError, CoordinatorLoadInProgressError, NotCoordinatorError)
"""The group coordinator is starting, loading, or moved: worth asking again."""

T = TypeVar("T")


async def group_read(
    read: Callable[[], Awaitable[T]],
    *,
    group_id: str,
    what: str,
    wait_s: float | None = None,
) -> T:
    """``read()``, asked again while the group's coordinator is not ready (up to
    ``wait_s``); other Kafka errors, and a coordinator still not ready, are a
    :class:`SetupError` sentence. ``wait_s`` defaults to ``COORDINATOR_WAIT_S``."""
    wait_s = COORDINATOR_WAIT_S if wait_s is None else wait_s
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return await read()
        except NOT_READY as error:
            if time.monotonic() >= deadline:
                raise SetupError(
                    f"Kafka's coordinator of group {group_id} is still not ready after "
                    f"{wait_s:g} s ({type(error).__name__}) while reading its {what}; "
                    "a new cluster needs a moment: try again shortly."
                ) from None
            await asyncio.sleep(_RETRY_S)
        except KafkaError as error:
            raise SetupError(
                f"Kafka refused to give the {what} of group {group_id}: {error}."
            ) from None


def _check_group_error(code: int, group_id: str) -> None:
    """Raise the error a group description reports (a not-ready one is retried)."""
    if code:
        raise for_code(code)(f"error code {code} for group {group_id}")


async def describe_group(admin: Any, group_id: str) -> tuple[str, list[MemberStatus]]:
    """The group's state and its members with the partitions each holds."""
    from orchestrator.commands.status import MemberStatus

    async def describe() -> Any:
        (response,) = await admin.describe_consumer_groups([group_id])
        (group,) = response.groups
        _check_group_error(group[0], group_id)
        return group

    group = await group_read(describe, group_id=group_id, what="members")
    _error, _group_id, state, _protocol_type, _protocol, raw_members, *_ = group
    members = []
    for member_id, client_id, client_host, _metadata, assignment in raw_members:
        partitions: dict[str, list[int]] = {}
        if assignment:  # empty while the group rebalances
            decoded = ConsumerProtocolMemberAssignment.decode(assignment)
            for topic, numbers in decoded.assignment:
                partitions.setdefault(topic, []).extend(sorted(numbers))
        members.append(MemberStatus(member_id, client_id, client_host, partitions))
    return state, sorted(members, key=lambda member: member.member_id)


async def committed_offsets(
    admin: Any, group_id: str, partitions: list[TopicPartition]
) -> dict[TopicPartition, int]:
    """The group's committed offset per partition; partitions with none are left out."""
    offsets = await group_read(
        lambda: admin.list_consumer_group_offsets(group_id, partitions=partitions),
        group_id=group_id,
        what="committed offsets",
    )
    return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


async def count_in_flight(
    consumer: AIOKafkaConsumer, topic: str, partitions: int
) -> dict[int, int]:
    """Running sagas per changelog partition: ``s:`` keys whose last value is a saga's
    start (neither a tombstone nor a finished marker ``{"done": ms}``)."""
    wanted = [TopicPartition(topic, p) for p in range(partitions)]
    running: dict[int, set[bytes]] = {p: set() for p in range(partitions)}
    async for partition, key, value in read_to_end(consumer, wanted):
        if not key.startswith(b"s:"):
            continue
        if value is None or _is_finished(value):
            running[partition].discard(key)
        else:
            running[partition].add(key)
    return {p: len(keys) for p, keys in running.items()}


def _is_finished(value: bytes) -> bool:
    # A finished marker is tiny; a start carries the input (or is "#chunks:<n>").
    if len(value) > 64 or not value.startswith(b"{"):
        return False
    body = orjson.loads(value)
    return isinstance(body, dict) and "done" in body
