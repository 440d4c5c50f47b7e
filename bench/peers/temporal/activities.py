"""The activities: plain HTTP GETs against the mock service.

They are methods of a class holding one shared :class:`aiohttp.ClientSession`, the
pattern the Temporal Python docs recommend for giving activities a long-lived client:
the worker creates the session once, so every call reuses keep-alive connections.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
from temporalio import activity


class MockActivities:
    """Activities bound to one HTTP session and the mock service's base URL."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")

    @activity.defn(name="fetch")
    async def fetch(self, path: str) -> dict[str, Any]:
        """GET ``path`` from the mock service; a non-2xx answer fails (and retries) the call."""
        async with self._session.get(self._base_url + path) as response:
            response.raise_for_status()
            body: dict[str, Any] = orjson.loads(await response.read())
            return body
