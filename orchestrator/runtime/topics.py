"""Check the topics the coordinator needs: create missing ones, compare partitions."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from orchestrator.errors import SetupError

_ALREADY_EXISTS = 36
_NOT_AUTHORIZED = (29, 31)  # TOPIC_ and CLUSTER_AUTHORIZATION_FAILED


async def check_topics(
    bootstrap_servers: str,
    topics: Mapping[str, int],
    *,
    security: Mapping[str, Any] | None = None,
    create: bool = True,
    replication_factor: int = 0,
    same_partitions: tuple[str, ...] = (),
    at_least: tuple[str, str] | None = None,
    compacted: tuple[str, ...] = (),
) -> dict[str, int]:
    """Make sure ``topics`` (``name -> partitions``) exist; return their partition counts.

    Args:
        bootstrap_servers: the cluster.
        security: aiokafka's security arguments
            (:func:`orchestrator.kafka_security.client_options`).
        topics: what to check; the counts are used only when creating.
        create: create missing topics; when False a missing topic is an error.
        replication_factor: replicas of created topics; 0 means three, or one per
            broker on a smaller cluster. Replicated topics get ``min.insync.replicas``
            of one less, so ``acks=all`` really means more than one copy.
        same_partitions: topics that must have the same partition count (the first
            is the reference).
        at_least: ``(reference, topic)``: ``topic`` must have at least as many
            partitions as ``reference``.
        compacted: topics created with ``cleanup.policy=compact``; existing ones
            must have it.

    Raises:
        SetupError: a topic is missing (and not created), cannot be created, or the
            pair in ``same_partitions`` differs.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **(security or {}))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in topics if name not in existing]
        if missing and not create:
            raise SetupError(
                f"Topics {', '.join(missing)} do not exist and ORCH_CREATE_TOPICS is false: "
                "create them (the reply topic with as many partitions as the request topic)."
            )
        if missing:
            await _create(
                admin,
                {name: topics[name] for name in missing},
                replication_factor,
                compacted=set(compacted),
                user=(security or {}).get("sasl_plain_username"),
            )
        counts = await _partition_counts(admin, list(topics))
        existing_compacted = [name for name in compacted if name not in missing]
        if existing_compacted:
            await _check_compacted(admin, existing_compacted)
    finally:
        await admin.close()
    if same_partitions:
        first, *others = same_partitions
        for second in others:
            if counts[first] != counts[second]:
                raise SetupError(
                    f"The topic {second!r} has {counts[second]} partitions and {first!r} has "
                    f"{counts[first]}: they must match so replies and saga state stay with the "
                    "instance that runs the saga."
                )
    if at_least is not None:
        reference, topic = at_least
        if counts[topic] < counts[reference]:
            raise SetupError(
                f"The topic {topic!r} has {counts[topic]} partitions, fewer than the "
                f"{counts[reference]} of {reference!r}: each request's result goes to the "
                "partition of the same number."
            )
    return counts


async def _check_compacted(admin: AIOKafkaAdminClient, names: list[str]) -> None:
    responses = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    )
    for response in responses:
        for _code, _message, _type, name, entries in response.resources:
            policy = next((entry[1] for entry in entries if entry[0] == "cleanup.policy"), None)
            if policy is None or "compact" not in policy.split(","):
                raise SetupError(
                    f"The topic {name!r} holds saga state and must be compacted, but its "
                    f"cleanup.policy is {policy!r}: set cleanup.policy=compact on it (or "
                    "delete it and let the coordinator create it)."
                )


async def _create(
    admin: AIOKafkaAdminClient,
    topics: Mapping[str, int],
    replication_factor: int,
    *,
    compacted: set[str],
    user: str | None = None,
) -> None:
    if replication_factor <= 0:
        brokers = len((await admin.describe_cluster())["brokers"])
        replication_factor = min(3, max(brokers, 1))
    configs = {"min.insync.replicas": str(replication_factor - 1)} if replication_factor > 1 else {}
    response = await admin.create_topics(
        [
            NewTopic(
                name,
                partitions,
                replication_factor,
                topic_configs={**configs, "cleanup.policy": "compact"}
                if name in compacted
                else configs,
            )
            for name, partitions in topics.items()
        ]
    )
    for topic, code, *message in response.topic_errors:
        if code in _NOT_AUTHORIZED:
            # A topic this principal may not describe looks missing, so a missing
            # ACL surfaces here first.
            who = f"user {user!r}" if user else "this client"
            raise SetupError(
                f"Kafka denied {who} access to topic {topic!r} (it may neither see "
                "nor create it): grant its principal the ACLs the README's Kafka security "
                "section lists, or create the topic and grant them."
            )
        if code not in (0, _ALREADY_EXISTS):
            raise SetupError(
                f"Kafka refused to create topic {topic!r} (error {code}: {message}); "
                "create it by hand or fix the broker's settings."
            )


async def _partition_counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    # Fresh topics can take a moment to show their partitions in metadata.
    counts: dict[str, int] = {}
    for _ in range(50):
        described = await admin.describe_topics(names)
        counts = {entry["topic"]: len(entry["partitions"]) for entry in described}
        if all(counts.get(name) for name in names):
            return counts
        await asyncio.sleep(0.1)
    missing = [name for name in names if not counts.get(name)]
    raise SetupError(f"Topics {', '.join(missing)} do not exist and could not be created.")
