"""The Restate service ``OrderDetails``: the order-details flow on the Restate Python SDK.

Run: ``python -m bench.peers.restate.service --mock-url URL [--port P]``. It serves the
SDK's ASGI app with hypercorn on 127.0.0.1 (HTTP/2 cleartext, which Restate speaks to
a deployment registered with an ``http://`` URI), prints one JSON line ``{"url": ...}``
once it listens (``--port 0``, the default, binds a free port and says which), and
stops gracefully on SIGTERM or SIGINT.

The handler is written the way the SDK's docs recommend, not tuned for the benchmark:
every GET is one journaled step (``ctx.run_typed``), so a retried or resumed invocation
replays the answers it already has instead of calling the mock again; the order comes
first, then the user, the store and the five products run concurrently, and
``restate.gather`` waits for all of them (a durable combinator, so the order of
completion is in the journal too). A 4xx answer is a ``TerminalError`` (retrying
cannot change it); anything else that fails is raised as is, so Restate retries the
step under its default retry policy. The HTTP calls share one keep-alive aiohttp
session for the life of the process, as any service would.

The hypercorn settings are those of Restate's Python template
(``hypercorn-config.toml``): no cap on concurrent HTTP/2 streams, on requests per
connection or on keep-alive time, since the server multiplexes every invocation over
a few long-lived HTTP/2 connections. One worker process, like the other peers' single
worker: its pid is the one the bench reads CPU time from.
"""

# No ``from __future__ import annotations`` here: ``ctx.run_typed`` reads the step's
# return type with ``inspect.signature(..., eval_str=True)`` on every call, and string
# annotations would be evaluated each time.

import argparse
import asyncio
import signal
import socket
import sys
from typing import Any, TypedDict

import aiohttp
import orjson

# The Restate SDK (restate-sdk); ruff files it as first-party only because this
# package's folder is also called restate.
import restate
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config
from restate.server import install_shutdown_hook

from bench.mock_service import compose

UNLIMITED = 2**31 - 1
"""Restate's template sets HTTP/2 streams, requests per connection and keep-alive to this."""
HTTP_CONNECTIONS = 500
"""Keep-alive pool to the mock, as the Temporal worker's: every GET of 50 concurrent
invocations can be in flight at once, so the pool is not a hidden limit."""


class OrderRequest(TypedDict):
    """The handler's input: ``{"order_id": "o-<n>"}``."""

    order_id: str


class Downstream:
    """The mock service, called through one keep-alive session shared by every invocation.

    One module-level instance, opened by :func:`serve` before the server accepts
    requests: the SDK's ASGI app has no lifespan hook or per-app state to carry it.
    """

    def __init__(self) -> None:
        self.base_url = ""
        self.session: aiohttp.ClientSession | None = None

    def open(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session

    async def get(self, path: str) -> dict[str, Any]:
        """GET ``path`` and decode its JSON body.

        Raises:
            restate.TerminalError: on a 4xx answer, which no retry can change.
            aiohttp.ClientError: on anything else that fails (Restate retries the step).
        """
        assert self.session is not None, "serve() opens the downstream before requests arrive"
        async with self.session.get(self.base_url + path) as response:
            if 400 <= response.status < 500:
                raise restate.TerminalError(
                    f"GET {path} answered {response.status}", status_code=response.status
                )
            response.raise_for_status()
            body: dict[str, Any] = orjson.loads(await response.read())
            return body


downstream = Downstream()
order_details = restate.Service("OrderDetails")


@order_details.handler()
async def run(ctx: restate.Context, request: OrderRequest) -> dict[str, Any]:
    """The order, then its user, store and products concurrently, composed."""
    get = downstream.get
    order = await ctx.run_typed("order", get, path=f"/orders/{request['order_id']}")
    steps = [
        ctx.run_typed("user", get, path=f"/users/{order['user_id']}"),
        ctx.run_typed("store", get, path=f"/stores/{order['store_id']}"),
        *(
            ctx.run_typed(
                f"product {item['product_id']}", get, path=f"/products/{item['product_id']}"
            )
            for item in order["items"]
        ),
    ]
    await restate.gather(*steps)
    user, store, *products = [await step for step in steps]
    return compose(order, user, store, products)


app = restate.app(services=[order_details])


def hypercorn_config(sock: socket.socket) -> Config:
    """Hypercorn on the bound ``sock`` (it takes the descriptor over), with Restate's settings."""
    config = Config()
    config.h2_max_concurrent_streams = UNLIMITED
    config.keep_alive_max_requests = UNLIMITED
    config.keep_alive_timeout = UNLIMITED
    config.accesslog = None
    sock.listen(config.backlog)
    config.bind = [f"fd://{sock.detach()}"]
    return config


async def serve(*, port: int, mock_url: str) -> None:
    """Serve the app until SIGTERM or SIGINT, then let in-flight invocations finish."""
    # Bind and listen here rather than in hypercorn, so that port 0 works and the URL
    # printed is one that already accepts connections (no window for another process
    # to take a probed port); hypercorn takes the descriptor over and closes it.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", port))
    bound: int = sock.getsockname()[1]
    config = hypercorn_config(sock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # The SDK installs its own SIGTERM handler on the loop at the first request (to
    # tell open invocations the deployment is going away); registering through its
    # hook chain keeps both, where loop.add_signal_handler would be replaced by it.
    install_shutdown_hook(loop, stop.set, signal.SIGTERM)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    connector = aiohttp.TCPConnector(limit=HTTP_CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector) as session:
        downstream.open(mock_url, session)
        print(orjson.dumps({"url": f"http://127.0.0.1:{bound}"}).decode(), flush=True)
        await hypercorn_serve(app, config, shutdown_trigger=stop.wait)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 (default): any free port")
    parser.add_argument("--mock-url", required=True)
    args = parser.parse_args(argv)
    asyncio.run(serve(port=args.port, mock_url=args.mock_url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
