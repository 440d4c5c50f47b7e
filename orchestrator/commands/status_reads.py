"""The Kafka reads behind ``orchestrator status`` that aiokafka does not offer as such.

aiokafka's admin client answers a group description with the raw protocol response
(member assignments as bytes); the saga count reads the changelog's keys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from orchestrator.runtime.changelog import read_to_end

if TYPE_CHECKING:
    from orchestrator.commands.status import MemberStatus

NO_GROUP_STATES = ("Dead", "Empty")


async def describe_group(admin: Any, group_id: str) -> tuple[str, list[MemberStatus]]:
    """The group's state and its members with the partitions each holds."""
    from orchestrator.commands.status import MemberStatus

    (response,) = await admin.describe_consumer_groups([group_id])
    (group,) = response.groups
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
    offsets = await admin.list_consumer_group_offsets(group_id, partitions=partitions)
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
