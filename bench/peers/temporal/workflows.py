"""The order-details workflows.

:class:`OrderDetails` schedules each GET as a regular activity (one task-queue round
trip through the server per call); :class:`OrderDetailsLocal` runs the same calls as
local activities, which execute inside the worker that runs the workflow and are only
recorded in history when the workflow task completes. Both fetch the order first,
then the user, the store and the five products concurrently, and compose them.

The workflow sandbox re-imports this module for every workflow run, so the imports
that are not workflow code (the activity class, which pulls in aiohttp, and the pure
``compose`` function) are passed through, as the SDK docs recommend.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from bench.mock_service import compose
    from bench.peers.temporal.activities import MockActivities

FETCH_TIMEOUT = timedelta(seconds=10)
"""Each GET answers in about a millisecond; ten seconds only bounds a stuck call."""

Fetch = Callable[[str], Awaitable[dict[str, Any]]]


async def order_details(order_id: str, fetch: Fetch) -> dict[str, Any]:
    """The flow itself, shared by both workflows; ``fetch`` schedules one GET."""
    order = await fetch(f"/orders/{order_id}")
    user, store, *products = await asyncio.gather(
        fetch(f"/users/{order['user_id']}"),
        fetch(f"/stores/{order['store_id']}"),
        *(fetch(f"/products/{item['product_id']}") for item in order["items"]),
    )
    return compose(order, user, store, products)


@workflow.defn
class OrderDetails:
    """Order details with each GET as an activity."""

    @workflow.run
    async def run(self, order_id: str) -> dict[str, Any]:
        return await order_details(order_id, self._fetch)

    @staticmethod
    def _fetch(path: str) -> Awaitable[dict[str, Any]]:
        return workflow.execute_activity_method(
            MockActivities.fetch, path, start_to_close_timeout=FETCH_TIMEOUT
        )


@workflow.defn
class OrderDetailsLocal:
    """Order details with each GET as a local activity."""

    @workflow.run
    async def run(self, order_id: str) -> dict[str, Any]:
        return await order_details(order_id, self._fetch)

    @staticmethod
    def _fetch(path: str) -> Awaitable[dict[str, Any]]:
        return workflow.execute_local_activity_method(
            MockActivities.fetch, path, start_to_close_timeout=FETCH_TIMEOUT
        )
