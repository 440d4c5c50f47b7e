"""Create the topics the coordinator needs, and check their partition counts."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from orchestrator.errors import SetupError

_ALREADY_EXISTS = 36


async def ensure_topics(
    bootstrap_servers: str, topics: Mapping[str, int], *, replication_factor: int = 0
) -> dict[str, int]:
    """Create missing topics (``name -> partitions``); return every topic's partition count.

    ``replication_factor=0`` means three replicas, or one per broker on a smaller cluster.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, partitions, max(replication_factor, 1))
            for name, partitions in topics.items()
            if name not in existing
        ]
        if missing:
            if replication_factor <= 0:
                brokers = len((await admin.describe_cluster())["brokers"])
                for topic in missing:
                    topic.replication_factor = min(3, max(brokers, 1))
            response = await admin.create_topics(missing)
            for topic, code, *message in response.topic_errors:
                if code not in (0, _ALREADY_EXISTS):
                    raise SetupError(
                        f"Kafka refused to create topic {topic!r} (error {code}: {message}); "
                        "create it by hand or fix the broker's settings."
                    )
        return await _partition_counts(admin, list(topics))
    finally:
        await admin.close()


async def _partition_counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    # Fresh topics can take a moment to show their partitions in metadata.
    for _ in range(50):
        described = await admin.describe_topics(names)
        counts = {entry["topic"]: len(entry["partitions"]) for entry in described}
        if all(counts.get(name) for name in names):
            return counts
        await asyncio.sleep(0.1)
    missing = [name for name in names if not counts.get(name)]
    raise SetupError(f"Topics {', '.join(missing)} do not exist and could not be created.")
