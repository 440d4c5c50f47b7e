"""The floor: the same composition as plain asyncio code in the bench process.

``direct-aiohttp`` is the fastest Python HTTP client here, ``direct-httpx`` the
client the design card names, with its default pool. Both run in the load
generator's process, so their CPU figure includes the load generator's own (a
coroutine per request): it overstates the floor slightly, never understates it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from typing import Any

import aiohttp
import httpx
import orjson

from bench.mock_service import compose


async def order_details(get: Callable[[str], Awaitable[Any]], number: int) -> dict[str, Any]:
    """The composition as plain asyncio: the order, then the rest concurrently."""
    order = await get(f"/orders/o-{number}")
    user, store, *products = await asyncio.gather(
        get(f"/users/{order['user_id']}"),
        get(f"/stores/{order['store_id']}"),
        *(get(f"/products/{item['product_id']}") for item in order["items"]),
    )
    return compose(order, user, store, products)


class DirectAiohttp:
    """``aiohttp.ClientSession`` with one keep-alive pool of 100 connections."""

    name = "direct-aiohttp"

    def __init__(self, mock_url: str) -> None:
        self._mock_url = mock_url
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            self._mock_url, connector=aiohttp.TCPConnector(limit=100)
        )

    async def _get(self, path: str) -> Any:
        assert self._session is not None
        async with self._session.get(path) as response:
            response.raise_for_status()
            return orjson.loads(await response.read())

    async def run_one(self, number: int) -> dict[str, Any]:
        return await order_details(self._get, number)

    def pids(self) -> list[int]:
        return [os.getpid()]

    def versions(self) -> dict[str, str]:
        return {"aiohttp": version("aiohttp")}

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()


class DirectHttpx:
    """``httpx.AsyncClient`` with its default pool (httpcore)."""

    name = "direct-httpx"

    def __init__(self, mock_url: str) -> None:
        self._mock_url = mock_url
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self._client = httpx.AsyncClient(base_url=self._mock_url)

    async def _get(self, path: str) -> Any:
        assert self._client is not None
        response = await self._client.get(path)
        response.raise_for_status()
        return orjson.loads(response.content)

    async def run_one(self, number: int) -> dict[str, Any]:
        return await order_details(self._get, number)

    def pids(self) -> list[int]:
        return [os.getpid()]

    def versions(self) -> dict[str, str]:
        return {"httpx": version("httpx"), "httpcore": version("httpcore")}

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
