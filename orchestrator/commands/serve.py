"""``orchestrator serve FLOWS``: the HTTP ingress, a process of its own.

It loads FLOWS only to know the flow names and input schemas; the sagas run in
the coordinators (``orchestrator run``), which it reaches through Kafka.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import uvicorn

EPILOG = textwrap.dedent(
    """\
    examples:
      orchestrator serve handlers/demo/flows --port 8080
      curl -s -X POST localhost:8080/flows/order-details \\
          -H 'Content-Type: application/json' -d '{"order_id": "o-1"}'

    Settings (environment): ORCH_INGRESS_WAIT_MS, ORCH_INGRESS_MAX_BODY_BYTES,
    ORCH_INGRESS_CORS_ORIGINS, ORCH_INGRESS_TOKENS_FILE, ORCH_INGRESS_LOOKUP_WINDOW_MS,
    and the topics and KAFKA_BOOTSTRAP_SERVERS the coordinators use. The OpenAPI
    document is at /openapi.json; /healthz, /readyz and /metrics are there too, and
    the execution timeline page at /timeline (ORCH_TIMELINE_WINDOW_MS,
    ORCH_TIMELINE_MAX_SAGAS).
    """
)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``serve`` subcommand."""
    serve = commands.add_parser(
        "serve",
        help="serve the flows over HTTP (the ingress; sagas run in `orchestrator run`)",
        description="Serve POST /flows/{name} for every flow of FLOWS: each request is "
        "published to Kafka and answered with its result.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("flows", type=Path, help="folder with services.yaml and flow files")
    serve.add_argument(
        "--host", help="address to listen on (default $ORCH_INGRESS_HOST or 127.0.0.1)"
    )
    serve.add_argument(
        "--port", type=int, help="port to listen on (default $ORCH_INGRESS_PORT or 8080)"
    )
    serve.set_defaults(command=run_serve)


def run_serve(arguments: argparse.Namespace) -> int:
    """Load the flows, connect to Kafka, serve until SIGINT or SIGTERM."""
    import asyncio
    import logging

    import uvicorn
    from starlette.applications import Starlette

    from handlers.tracing import configure_from_env
    from orchestrator.client import OrchestratorClient
    from orchestrator.flow_files import load_flows
    from orchestrator.ingress import IngressConfig, create_app
    from orchestrator.ingress.tracing import tracing_middleware
    from orchestrator.settings import CoordinatorSettings
    from orchestrator.timeline import Timeline

    registry = load_flows(arguments.flows)
    settings = CoordinatorSettings.from_env()
    # Off unless OTEL_TRACES_EXPORTER (or an OTLP endpoint) is set.
    configure_from_env("orchestrator-ingress")
    host: str = arguments.host or settings.ingress_host
    port: int = arguments.port if arguments.port is not None else settings.ingress_port
    config = IngressConfig.from_settings(settings, flows=registry.flows)
    listener = bind(host, port)

    async def announce(app: Starlette) -> None:
        bound_host, bound_port = listener.getsockname()[:2]
        print(
            f"Ingress serving {len(registry.flows)} flow(s) ({', '.join(sorted(registry.flows))}) "
            f"on http://{bound_host}:{bound_port} (OpenAPI at /openapi.json), requests to "
            f"{settings.request_topic}, Kafka at {settings.bootstrap_servers}. Ctrl-C stops it.",
            flush=True,
        )

    async def serve() -> int:
        async with OrchestratorClient(settings, source="urn:orchestrator:ingress") as client:
            # The timeline page (/timeline): its own reader of the results and changelog.
            timeline = Timeline(settings, tokens=config.tokens)
            app = create_app(
                registry=registry,
                client=client,
                config=config,
                routes=timeline.routes,
                middleware=tracing_middleware(),
                on_startup=[announce, timeline.start],
                on_shutdown=[timeline.stop],
            )
            level = logging.getLogger().getEffectiveLevel()
            server = _server(
                uvicorn.Config(
                    app,
                    log_config=None,
                    log_level=level,
                    access_log=level <= logging.INFO,
                    lifespan="on",
                )
            )
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                # A second Ctrl-C stops at once, as uvicorn's own handler does.
                loop.add_signal_handler(signum, server.handle_exit, signum, None)
            await server.serve(sockets=[listener])
        print("Ingress stopped.", flush=True)
        return 0

    try:
        return asyncio.run(serve())
    finally:
        listener.close()


def _server(config: uvicorn.Config) -> uvicorn.Server:
    """uvicorn's server without its signal capture: after a graceful stop uvicorn
    raises the signal again, which would end the process before the Kafka client
    closes. ``run_serve`` installs handlers that stop it the same way instead."""
    import uvicorn

    class IngressServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return IngressServer(config)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: any free one).

    Raises:
        SetupError: the address cannot be used (taken, or not this machine's).
    """
    from orchestrator.errors import SetupError

    listener: socket.socket | None = None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        listener = socket.socket(family, kind, proto)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
    except OSError as error:
        if listener is not None:
            listener.close()
        raise SetupError(
            f"Cannot listen on {host}:{port} ({error.strerror or error}): choose another "
            "--port or --host."
        ) from None
    listener.listen(2048)
    listener.setblocking(False)
    return listener
