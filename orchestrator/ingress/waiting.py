"""How the ingress waits for a result and reads Kafka back, within bounds.

Waiting costs a future (the client's one reader completes it); reading back costs
a scan of one partition. Both are capped per process: at most
``max_waiters`` callers wait at once (more are refused, so abandoned long polls
cannot pile up), at most ``max_lookups`` read-backs run or queue at once (more
answer "not found yet" at once), and each read-back gives up after
``lookup_timeout_ms``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from orchestrator.client import ResultTimeoutError
from orchestrator.ingress.config import IngressConfig
from orchestrator.ingress.errors import IngressRefusal
from orchestrator.ingress.metrics import IngressMetrics

logger = logging.getLogger(__name__)

READBACK_DELAY_S = 1.0
"""A POST with an ``Idempotency-Key`` reads Kafka back only when no result came
within this long: a fresh key's result normally arrives in milliseconds, so most
POSTs never read back; a key retried after the ingress restarted pays it once."""


class ResultClient(Protocol):
    """What the ingress needs of :class:`~orchestrator.client.OrchestratorClient`."""

    async def submit(
        self, flow: str, input: dict[str, Any], *, request_id: str | None = None
    ) -> str: ...

    async def wait_for(
        self,
        request_id: str,
        *,
        timeout: float = 30.0,  # noqa: ASYNC109
    ) -> dict[str, Any]: ...

    def result_of(self, request_id: str) -> dict[str, Any] | None: ...

    async def lookup(self, request_id: str, *, window_ms: int) -> dict[str, Any] | None: ...

    async def find_request(self, request_id: str, *, window_ms: int) -> dict[str, Any] | None: ...

    async def connected(self, *, timeout: float = 2.0) -> bool: ...  # noqa: ASYNC109


@dataclass(frozen=True, slots=True)
class Found:
    """What a read-back gave: the event, or None and whether the answer is sure."""

    event: dict[str, Any] | None
    gave_up: bool = False
    """True when the read-back timed out, was refused (too many) or failed."""


class ResultWaits:
    """Waits and read-backs of one ingress process, over its one client."""

    def __init__(
        self, *, client: ResultClient, config: IngressConfig, metrics: IngressMetrics
    ) -> None:
        self._client = client
        self._config = config
        self._metrics = metrics
        self._waiting = 0
        self._lookups = asyncio.Semaphore(config.max_lookups)

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """One caller waiting; :class:`IngressRefusal` when ``max_waiters`` already do."""
        if self._waiting >= self._config.max_waiters:
            raise IngressRefusal.of(
                "ingress.too_many_waiters",
                f"{self._config.max_waiters} callers already wait for a result here "
                "(ORCH_INGRESS_MAX_WAITERS); retry later, or ask with `Prefer: wait=0`.",
            )
        self._waiting += 1
        self._metrics.waiting.inc()
        try:
            yield
        finally:
            self._waiting -= 1
            self._metrics.waiting.dec()

    async def lookup(self, request_id: str) -> Found:
        """The result of ``request_id``, from memory or read back from Kafka."""
        return await self._bounded(request_id, self._client.lookup)

    async def find_request(self, request_id: str) -> Found:
        """The request event of ``request_id``, read back from the request topic."""
        return await self._bounded(request_id, self._client.find_request)

    async def _bounded(
        self,
        request_id: str,
        read: Callable[..., Awaitable[dict[str, Any] | None]],
    ) -> Found:
        if self._lookups.locked():
            return Found(None, gave_up=True)  # a queue of read-backs helps no one
        try:
            async with asyncio.timeout(self._config.lookup_timeout_ms / 1000), self._lookups:
                return Found(await read(request_id, window_ms=self._config.lookup_window_ms))
        except TimeoutError:
            return Found(None, gave_up=True)
        except Exception as error:
            logger.warning("reading back %s failed: %s", request_id, error)
            return Found(None, gave_up=True)

    async def result_within(
        self, request_id: str, wait_s: float, *, read_back_after: float | None
    ) -> dict[str, Any] | None:
        """The result within ``wait_s`` from the reader, else None; with
        ``read_back_after``, a read-back of Kafka starts after that many seconds
        without a result (a retried key answered before this process started)."""
        if wait_s <= 0:
            return self._client.result_of(request_id)
        waiter = asyncio.ensure_future(self._client.wait_for(request_id, timeout=wait_s))
        running: set[asyncio.Future[Any]] = {waiter}
        if read_back_after is not None and read_back_after < wait_s:
            running.add(asyncio.ensure_future(self._read_back_later(request_id, read_back_after)))
        try:
            while running:
                done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task is waiter:
                        return _waited(task, request_id)
                    found: Found = task.result()
                    if found.event is not None:
                        return found.event
            return None
        finally:
            for task in running:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _read_back_later(self, request_id: str, delay_s: float) -> Found:
        await asyncio.sleep(delay_s)
        return await self.lookup(request_id)


def _waited(task: asyncio.Future[Any], request_id: str) -> dict[str, Any] | None:
    error = task.exception()
    if isinstance(error, ResultTimeoutError):
        return None
    if error is not None:
        # The result reader failed (or the client stopped): nothing will answer here.
        logger.warning("waiting for %s failed: %s", request_id, error)
        raise IngressRefusal.of(
            "ingress.kafka_unavailable",
            f"The result reader stopped ({type(error).__name__}); the request "
            f"{request_id} may still run: fetch it from /requests/{request_id} later.",
        )
    return task.result()  # type: ignore[no-any-return]
