"""The HTTP transport under the adapter's httpx client: aiohttp's connection pool.

httpx's own pool (httpcore) scans every connection on each request and checks each
idle one's socket, which costs many times the CPU of the call itself under load
(httpx issue 3215). ``httpx_aiohttp`` keeps httpx's API (requests, responses,
streaming, errors) over aiohttp's pool. One thing is changed here: the URL is
handed to aiohttp as already encoded. aiohttp would otherwise re-quote and
normalise it, turning an encoded ``%2E%2E`` segment back into ``..`` and leaving the
path segment its value was put in. And its connector checks the address of every
connection against the calling service's outbound allow-list
(:mod:`handlers.outbound`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp.transport import (
    AiohttpResponseStream,
    AiohttpTransport,
    map_aiohttp_exceptions,
)
from yarl import URL

from handlers.outbound import PolicyConnector


class EncodedUrlTransport(AiohttpTransport):
    """:class:`httpx_aiohttp.AiohttpTransport` that sends URLs exactly as built."""

    def __init__(
        self, *, limits: httpx.Limits, trace_configs: Sequence[aiohttp.TraceConfig] = ()
    ) -> None:
        super().__init__(limits=limits, trust_env=False)
        self._trace_configs = list(trace_configs)
        """aiohttp's request hooks (OpenTelemetry's client spans, when tracing is on)."""

    def get_client(self) -> aiohttp.ClientSession:
        # Every connection's resolved address is checked against the calling
        # service's allow-list before it is opened (handlers.outbound).
        connector = PolicyConnector(
            limit=self.limits.max_connections or 0,
            keepalive_timeout=self.limits.keepalive_expiry,
            ssl=self.ssl_context,
        )
        # Bodies are read raw (auto_decompress=False, so a size limit counts the
        # bytes on the wire): ask for them uncompressed.
        return aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            skip_auto_headers=("Accept-Encoding",),
            trace_configs=self._trace_configs or None,
        )

    def session(self) -> aiohttp.ClientSession:
        """The aiohttp session under this transport (the HTTP adapter calls it directly)."""
        if not isinstance(self.client, aiohttp.ClientSession):
            self.client = self.get_client()
        return self.client

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not isinstance(self.client, aiohttp.ClientSession):
            self.client = self.get_client()
        with map_aiohttp_exceptions():
            data: Any = request.content or None
            response = await self.client.request(
                method=request.method,
                url=URL(str(request.url), encoded=True),
                headers=request.headers,
                data=data,
                allow_redirects=False,
                compress=False,
            ).__aenter__()
        extensions = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode()
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=AiohttpResponseStream(response),
            request=request,
            extensions=extensions,
        )
