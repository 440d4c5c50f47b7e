"""In-process SDK adapters for the bounded-evaluation tests: one that blocks its
thread (synchronous sleep inside ``async def``), one that answers at once."""

from __future__ import annotations

import time

from pydantic import BaseModel

from handlers.sdk import Service

BLOCK_S = 3.0

blocking = Service("blocking")
quick = Service("quick")


class Query(BaseModel):
    id: str


@blocking.operation
async def block(query: Query) -> dict[str, str]:
    time.sleep(BLOCK_S)  # noqa: ASYNC251  # the mistake under test
    return {"id": query.id}


@quick.operation
async def answer(query: Query) -> dict[str, str]:
    return {"id": query.id}
