"""The Temporal worker process hosting both order-details workflows and the activities.

Run: ``python -m bench.peers.temporal.worker --address HOST:PORT --task-queue Q
--mock-url URL``. It prints ``{"worker": "ready"}`` once it polls the task queue and
stops gracefully on SIGTERM or SIGINT.

Tuning follows the SDK's worker-performance guide and nothing more: pollers
autoscale (the recommended setting), and the activity slots allow every GET of 50
concurrent workflows to run at once (the activities are non-blocking I/O), with an
HTTP connection pool of the same size so the pool is not a hidden limit.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import aiohttp
import orjson
from temporalio.client import Client
from temporalio.worker import PollerBehaviorAutoscaling, Worker

from bench.peers.temporal.activities import MockActivities
from bench.peers.temporal.workflows import OrderDetails, OrderDetailsLocal

MAX_CONCURRENT_ACTIVITIES = 500
"""Slots for activities and for local activities (each): 50 workflows x 7 GETs fit."""


async def serve(*, address: str, namespace: str, task_queue: str, mock_url: str) -> None:
    """Connect, run the worker until a stop signal, then shut it down gracefully."""
    client = await Client.connect(address, namespace=namespace)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    connector = aiohttp.TCPConnector(limit=MAX_CONCURRENT_ACTIVITIES)
    async with aiohttp.ClientSession(connector=connector) as session:
        activities = MockActivities(session, mock_url)
        worker = Worker(
            client,
            task_queue=task_queue,
            workflows=[OrderDetails, OrderDetailsLocal],
            activities=[activities.fetch],
            max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES,
            max_concurrent_local_activities=MAX_CONCURRENT_ACTIVITIES,
            workflow_task_poller_behavior=PollerBehaviorAutoscaling(),
            activity_task_poller_behavior=PollerBehaviorAutoscaling(),
        )
        async with worker:
            print(orjson.dumps({"worker": "ready"}).decode(), flush=True)
            await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True, help="Temporal frontend, HOST:PORT")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--mock-url", required=True)
    args = parser.parse_args(argv)
    asyncio.run(
        serve(
            address=args.address,
            namespace=args.namespace,
            task_queue=args.task_queue,
            mock_url=args.mock_url,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
