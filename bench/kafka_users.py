"""The user lookup as a remote Kafka adapter, for the "one remote Kafka step" system.

Run: ``orchestrator adapter bench.kafka_users:users_kafka`` with ``BENCH_MOCK_URL``
and ``BENCH_USERS_TOPIC`` set. It makes the same HTTP call the in-process adapter
would (one keep-alive aiohttp session per process), so the difference between the
two systems is the Kafka hop: command out, reply back.
"""

from __future__ import annotations

import os

import aiohttp
import orjson
from pydantic import BaseModel

from handlers.sdk import Service

users_kafka = Service(
    "users_kafka", command_topic=os.environ.get("BENCH_USERS_TOPIC", "bench.users.commands")
)

_session: aiohttp.ClientSession | None = None


class UserQuery(BaseModel):
    """Which user."""

    user_id: str


class User(BaseModel):
    """A user as the mock service answers it."""

    id: str
    name: str
    email: str
    tier: str


@users_kafka.operation("get_user")
async def get_user(query: UserQuery) -> User:
    """Fetch the user from the mock service."""
    global _session  # noqa: PLW0603  # one session per worker process, made on first use
    if _session is None:
        _session = aiohttp.ClientSession(os.environ.get("BENCH_MOCK_URL", "http://127.0.0.1:8200"))
    async with _session.get(f"/users/{query.user_id}") as response:
        response.raise_for_status()
        return User.model_validate(orjson.loads(await response.read()))
