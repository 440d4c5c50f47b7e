"""``orchestrator status``: the broker, the topics, the coordinators' group and their sagas.

Everything comes from Kafka itself (admin requests, offsets, the saga changelog), so
it works with any number of coordinators and without reaching any of them:

- **broker**: the cluster's brokers and controller, as the bootstrap servers answer;
- **topics**: the five topics of the settings with partitions and replicas, or
  ``missing`` (listed, never described by name: that could auto-create them);
- **group**: the coordinators' consumer group, its members and the partitions each holds;
- **lag**: per request and reply partition, the group's committed offset against the
  end offset (no commit yet counts from the start, as the coordinator reads);
- **in-flight sagas**: saga starts in the changelog (``s:<request id>`` keys that are
  neither tombstoned nor replaced by a finished marker), per partition, credited to
  the member holding that request partition (changelog partition ``p`` belongs to
  request partition ``p``). A saga enters the changelog ``ORCH_CHANGELOG_DELAY_MS``
  after it starts, so the very youngest are not counted.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from orchestrator.errors import SetupError
from orchestrator.settings import CoordinatorSettings

EXAMPLE = """\
Example:
  KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 orchestrator status
  orchestrator status --json | jq '.lag[] | select(.lag > 0)'
"""

TOPIC_ROLES = (
    ("request", "request_topic"),
    ("reply", "reply_topic"),
    ("result", "result_topic"),
    ("dlq", "dead_letter_topic"),
    ("changelog", "changelog_topic"),
)


@dataclass(frozen=True, slots=True)
class TopicStatus:
    role: str
    name: str
    partitions: int | None
    """None: the topic does not exist."""
    replicas: int | None


@dataclass(frozen=True, slots=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None
    """None: the group committed nothing here yet."""
    end: int
    lag: int
    member: str | None


@dataclass(slots=True)
class MemberStatus:
    member_id: str
    client_id: str
    host: str
    partitions: dict[str, list[int]]
    in_flight: int | None = None


@dataclass(slots=True)
class ClusterStatus:
    bootstrap: str
    cluster_id: str | None
    controller: int | None
    brokers: list[str]
    topics: list[TopicStatus]
    group_id: str
    group_state: str
    members: list[MemberStatus]
    lag: list[PartitionLag]
    in_flight: int | None = None
    """Sagas in the changelog; None when not read (``--no-sagas``, or no changelog)."""
    in_flight_by_partition: dict[int, int] = field(default_factory=dict)
    in_flight_unassigned: int = 0
    """In-flight sagas of partitions no member holds (all coordinators down)."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``orchestrator status``."""
    parser = commands.add_parser(
        "status",
        help="show the broker, topics, consumer-group lag and in-flight sagas per instance",
        description="Show the broker, the orchestrator's topics, the coordinators' consumer "
        "group (members, partitions, lag) and the sagas in flight per instance.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="print JSON, for machines")
    parser.add_argument(
        "--no-sagas",
        action="store_true",
        help="do not read the changelog to count in-flight sagas (faster on a big one)",
    )
    parser.add_argument(
        "--timeout", type=float, default=15.0, help="seconds to wait for Kafka (default 15)"
    )
    parser.set_defaults(command=_status)


def _status(arguments: argparse.Namespace) -> int:
    settings = CoordinatorSettings.from_env()
    status = asyncio.run(
        collect_status(settings, read_sagas=not arguments.no_sagas, timeout_s=arguments.timeout)
    )
    if arguments.json:
        options = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
        print(orjson.dumps(asdict(status), option=options).decode())
    else:
        print(render(status), end="")
    return 0


async def collect_status(
    settings: CoordinatorSettings, *, read_sagas: bool = True, timeout_s: float = 15.0
) -> ClusterStatus:
    """Ask Kafka for the orchestrator's status under ``settings``.

    Raises:
        KafkaConnectionError: No bootstrap server answers.
        SetupError: Kafka answered, but not within ``timeout_s``.
    """
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient

    from orchestrator.kafka_security import client_options

    security = client_options(settings)
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        request_timeout_ms=int(timeout_s * 1000),
        **security,
    )
    await admin.start()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        **security,
        enable_auto_commit=False,
        isolation_level="read_committed",
        request_timeout_ms=int(timeout_s * 1000),
    )
    try:
        await consumer.start()
        async with asyncio.timeout(timeout_s):
            return await _collect(admin, consumer, settings, read_sagas=read_sagas)
    except TimeoutError:
        raise SetupError(
            f"Kafka at {settings.bootstrap_servers} did not answer within {timeout_s:g} s; "
            "try again, or raise --timeout."
        ) from None
    finally:
        await consumer.stop()
        await admin.close()


async def _collect(
    admin: Any, consumer: Any, settings: CoordinatorSettings, *, read_sagas: bool
) -> ClusterStatus:
    from aiokafka import TopicPartition

    from orchestrator.commands.status_reads import (
        committed_offsets,
        count_in_flight,
        describe_group,
    )

    cluster = await admin.describe_cluster()
    brokers = [f"{b['node_id']}@{b['host']}:{b['port']}" for b in cluster["brokers"]]
    described = {t["topic"]: t for t in await admin.describe_topics()}
    topics = []
    for role, attribute in TOPIC_ROLES:
        name = getattr(settings, attribute)
        topic = described.get(name)
        if topic is None or topic["error_code"] != 0:
            topics.append(TopicStatus(role, name, None, None))
            continue
        partitions = topic["partitions"]
        replicas = len(partitions[0]["replicas"]) if partitions else 0
        topics.append(TopicStatus(role, name, len(partitions), replicas))
    state, members = await describe_group(admin, settings.group_id)
    holder = {
        (topic, p): m.member_id for m in members for topic, ps in m.partitions.items() for p in ps
    }
    consumed = [
        TopicPartition(t.name, p)
        for t in topics
        if t.role in ("request", "reply") and t.partitions
        for p in range(t.partitions)
    ]
    lag = []
    if consumed:
        committed = await committed_offsets(admin, settings.group_id, consumed)
        ends = await consumer.end_offsets(consumed)
        starts = await consumer.beginning_offsets(consumed)
        for tp in consumed:
            done = committed.get(tp)
            lag.append(
                PartitionLag(
                    topic=tp.topic,
                    partition=tp.partition,
                    committed=done,
                    end=ends[tp],
                    lag=max(0, ends[tp] - (starts[tp] if done is None else done)),
                    member=holder.get((tp.topic, tp.partition)),
                )
            )
    status = ClusterStatus(
        bootstrap=settings.bootstrap_servers,
        cluster_id=cluster.get("cluster_id"),
        controller=cluster.get("controller_id"),
        brokers=brokers,
        topics=topics,
        group_id=settings.group_id,
        group_state=state,
        members=members,
        lag=lag,
    )
    changelog = topics[-1]
    if read_sagas and changelog.partitions:
        by_partition = await count_in_flight(consumer, changelog.name, changelog.partitions)
        status.in_flight = sum(by_partition.values())
        status.in_flight_by_partition = by_partition
        for member in members:
            member.in_flight = sum(
                by_partition.get(p, 0) for p in member.partitions.get(settings.request_topic, [])
            )
        status.in_flight_unassigned = sum(
            count for p, count in by_partition.items() if (settings.request_topic, p) not in holder
        )
    return status


def render(status: ClusterStatus) -> str:
    """The status as text for a terminal."""
    lines = [
        f"Kafka at {status.bootstrap}: {len(status.brokers)} broker(s) "
        f"({', '.join(status.brokers)}), controller {status.controller}",
        "Topics:",
    ]
    for topic in status.topics:
        shape = (
            "missing"
            if topic.partitions is None
            else f"{topic.partitions} partition(s), {topic.replicas} replica(s)"
        )
        lines.append(f"  {topic.role:<10} {topic.name:<40} {shape}")
    lines.append(f"Group {status.group_id}: {status.group_state}, {len(status.members)} member(s)")
    for member in status.members:
        held = "; ".join(
            f"{topic} {','.join(map(str, sorted(ps)))}"
            for topic, ps in sorted(member.partitions.items())
        )
        flight = "" if member.in_flight is None else f", {member.in_flight} saga(s) in flight"
        lines.append(f"  {member.member_id} ({member.host}): {held or 'no partitions'}{flight}")
    if status.lag:
        lines.append("Lag (committed offset -> end offset):")
        for row in status.lag:
            committed = "-" if row.committed is None else str(row.committed)
            lines.append(
                f"  {row.topic}[{row.partition}]  {committed} -> {row.end}  lag {row.lag}"
                f"  {row.member or '(unassigned)'}"
            )
    if status.in_flight is not None:
        unassigned = (
            f", {status.in_flight_unassigned} on partitions no member holds"
            if status.in_flight_unassigned
            else ""
        )
        lines.append(f"In-flight sagas: {status.in_flight}{unassigned}")
    return "\n".join(lines) + "\n"
