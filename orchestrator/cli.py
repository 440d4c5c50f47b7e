"""The ``orchestrator`` command line.

Errors a user can fix (a bad flow, a missing tool, an unreachable broker) are
printed as one sentence on stderr with a non-zero exit, never as a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from handlers.errors import AdapterSetupError
from orchestrator.errors import OrchestratorError, SetupError
from orchestrator.logs import configure_logging
from orchestrator.settings import LOG_FORMATS, CoordinatorSettings

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_FAILED_RESULT = 3
EXIT_TIMEOUT = 4


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``orchestrator`` command."""
    parser = _parser()
    arguments = parser.parse_args(argv)
    command: Callable[[argparse.Namespace], int] = arguments.command
    try:
        configure_logging(
            level=arguments.log_level, log_format=arguments.log_format or _env_log_format()
        )
        return command(arguments)
    except KeyboardInterrupt:
        return EXIT_ERROR
    except (OrchestratorError, AdapterSetupError) as error:
        print(f"error: {error}", file=sys.stderr)
    except Exception as error:
        message = _kafka_trouble(error)
        if message is None:
            raise
        print(message, file=sys.stderr)
    return EXIT_ERROR


def _kafka_trouble(error: Exception) -> str | None:
    """One sentence for any Kafka error that reached the top (no traceback for Kafka
    trouble in any command); None for anything else.

    aiokafka is looked up, not imported: if no command loaded it, the error is not
    one of its own (and ``--help`` stays free of it).
    """
    errors = sys.modules.get("aiokafka.errors")
    if errors is None or not isinstance(error, errors.KafkaError):
        return None
    from orchestrator import kafka_refusals

    try:
        settings = CoordinatorSettings.from_env()
    except OrchestratorError:  # the command got this far, so this is unlikely
        return f"error: Kafka answered with an error: {error}."
    refused = kafka_refusals.explain(error, settings)
    if refused is None and isinstance(error, errors.KafkaConnectionError):
        # A refused TLS or SASL handshake also ends as "Unable to bootstrap".
        refused = kafka_refusals.explain_connection_failure(settings)
    if refused is not None:
        return f"error: {refused}"
    if isinstance(error, errors.KafkaConnectionError):
        return (
            f"error: cannot reach Kafka ({error}). Start one with `orchestrator broker up`, "
            "or point KAFKA_BOOTSTRAP_SERVERS at yours."
        )
    return f"error: Kafka answered with an error: {error}."  # aiokafka's str names the class


def _env_log_format() -> str:
    """``ORCH_LOG_FORMAT``, checked by the settings model (the one reader of settings)."""
    log_format = CoordinatorSettings.env_values().get("log_format", "text")
    return CoordinatorSettings(log_format=log_format).log_format


def _subcommand(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    *,
    summary: str,
    example: str,
) -> argparse.ArgumentParser:
    """A subparser whose ``--help`` ends with ``example`` (kept as written)."""
    return commands.add_parser(
        name,
        help=summary,
        description=summary[0].upper() + summary[1:] + ".",
        epilog=f"Example:\n{example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrator",
        description="Event-driven API orchestration over Apache Kafka.",
        epilog="Example:\n  orchestrator broker up && orchestrator demo\n"
        "  orchestrator COMMAND --help    (each command has its own example)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--log-level", default="warning", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        help="text lines, or one JSON object per line (default $ORCH_LOG_FORMAT or text)",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = _subcommand(
        commands,
        "run",
        summary="run the saga coordinator over a flows folder",
        example="  KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 orchestrator run handlers/demo/flows\n"
        "  orchestrator --log-format json run handlers/demo/flows --processes 2\n",
    )
    run.add_argument("flows", type=Path, help="folder with services.yaml and flow files")
    run.add_argument(
        "--processes",
        type=int,
        default=1,
        metavar="N",
        help="run N coordinator processes in one consumer group (e.g. one per core)",
    )
    run.set_defaults(command=_run)

    send = _subcommand(
        commands,
        "send",
        summary="publish a request event",
        example='  orchestrator send order-details \'{"order_id": "o-1"}\' --wait\n'
        "  orchestrator send order-details @big-order.json --wait\n"
        "  generate-input | orchestrator send order-details - --wait\n",
    )
    send.add_argument("flow", help="flow name")
    send.add_argument(
        "input",
        nargs="?",
        help='the flow input: a JSON object (e.g. \'{"order_id": "o-1"}\'), '
        "@PATH to read it from a file, or - to read it from stdin",
    )
    send.add_argument(
        "--input-file", type=Path, metavar="PATH", help="read the input from this JSON file"
    )
    send.add_argument("--wait", action="store_true", help="wait for the result and print it")
    send.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (default 30)")
    send.add_argument("--request-id", help="request id (default: a new UUID)")
    send.set_defaults(command=_send)

    check = _subcommand(
        commands,
        "check",
        summary="check flow files without running them",
        example="  orchestrator check handlers/demo/flows\n"
        "  orchestrator check my-flows/order.yaml --services my-flows/services.yaml\n",
    )
    check.add_argument("path", type=Path, help="a flows folder or one flow file")
    check.add_argument(
        "--services", type=Path, help="service catalog (default: services.yaml beside)"
    )
    check.set_defaults(command=_check)

    broker = _subcommand(
        commands,
        "broker",
        summary="run a local Apache Kafka broker (no Docker)",
        example="  orchestrator broker up --port 19092   (prints the export line to use)\n"
        "  orchestrator broker status\n",
    )
    broker.add_argument("action", choices=["up", "down", "status"])
    broker.add_argument("--port", type=int, help="client port (default $ORCH_BROKER_PORT or 9092)")
    broker.set_defaults(command=_broker)

    adapter = _subcommand(
        commands,
        "adapter",
        summary="serve an SDK adapter over Kafka",
        example="  orchestrator adapter handlers.demo.inventory:inventory\n"
        "  orchestrator adapter mymodule:pricing --reply-topic 'orders.*.replies' "
        "--concurrency 32\n",
    )
    adapter.add_argument("service", help="the Service object, as module:attribute")
    adapter.add_argument("--command-topic", help="override the service's command topic")
    adapter.add_argument("--group-id", help="consumer group (default adapter.<service>)")
    adapter.add_argument("--dead-letter-topic", default="orchestrator.dlq")
    adapter.add_argument(
        "--reply-topic",
        action="append",
        dest="reply_topics",
        metavar="TOPIC",
        help="a topic replies may go to (a name or an fnmatch pattern; repeatable); "
        "default ORCH_REPLY_TOPIC. A command naming another is dead-lettered.",
    )
    adapter.add_argument(
        "--concurrency",
        type=int,
        default=16,
        help="commands run at once (default 16)",
    )
    adapter.set_defaults(command=_adapter)

    demo = _subcommand(
        commands,
        "demo",
        summary="run the order-details demo end to end",
        example="  orchestrator demo   (starts a local broker unless KAFKA_BOOTSTRAP_SERVERS "
        "is set)\n",
    )
    demo.set_defaults(command=_demo)

    from orchestrator.commands import register_all

    register_all(commands)
    return parser


def _run(arguments: argparse.Namespace) -> int:
    from orchestrator.flow_files import load_flows
    from orchestrator.runtime.coordinator import SagaCoordinator

    registry = load_flows(arguments.flows)
    settings = CoordinatorSettings.from_env()
    if arguments.processes < 1:
        raise SetupError(f"--processes must be at least 1, got {arguments.processes}.")
    if arguments.processes > 1:
        from orchestrator.processes import supervise

        if arguments.log_format:
            # The children are plain `orchestrator run`s that read it from their env.
            os.environ["ORCH_LOG_FORMAT"] = arguments.log_format

        return asyncio.run(
            supervise(
                arguments.flows,
                processes=arguments.processes,
                log_level=arguments.log_level,
                metrics_port=settings.metrics_port,
            )
        )
    from handlers.tracing import configure_from_env

    # Off unless OTEL_TRACES_EXPORTER (or an OTLP endpoint) is set.
    configure_from_env("orchestrator-coordinator")

    async def serve() -> int:
        stop = _stop_on_signals()
        async with SagaCoordinator(registry=registry, settings=settings) as coordinator:
            # Everything loaded so far lives as long as the process: keep it out of
            # the collector's generations so many sagas in flight collect cheaply.
            gc.freeze()
            print(
                f"Coordinator running: {len(registry.flows)} flow(s) "
                f"({', '.join(sorted(registry.flows))}), requests on {settings.request_topic}, "
                f"results on {settings.result_topic}, Kafka at {settings.bootstrap_servers}"
                + (
                    f", metrics at http://{settings.metrics_host}:{coordinator.metrics_port}/metrics"
                    if coordinator.metrics_port
                    else ""
                )
                + ". Ctrl-C stops it.",
                flush=True,
            )
            stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
            failed: asyncio.Future[Any] = coordinator.failed
            await asyncio.wait({stopping, failed}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if coordinator.failed.done() and coordinator.failed.exception() is not None:
                error = coordinator.failed.exception()
                print(
                    f"The coordinator cannot go on and is stopping: {error}. "
                    "Its sagas are in the changelog; restart it to resume them.",
                    file=sys.stderr,
                    flush=True,
                )
                return EXIT_ERROR
        print("Coordinator stopped.")
        return EXIT_OK

    from orchestrator import eventloop

    return eventloop.run(serve())


def _send(arguments: argparse.Namespace) -> int:
    from orchestrator.client import OrchestratorClient, ResultTimeoutError

    text, where = _read_input(arguments)
    try:
        flow_input = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        raise SetupError(
            f"The input{where} is not valid JSON ({error}); "
            'quote it, e.g. \'{"order_id": "o-1"}\'.'
        ) from None
    if not isinstance(flow_input, dict):
        raise SetupError('The input must be a JSON object, e.g. \'{"order_id": "o-1"}\'.')
    settings = CoordinatorSettings.from_env()

    async def send() -> int:
        async with OrchestratorClient(settings) as client:
            request_id = await client.send(
                arguments.flow, flow_input, request_id=arguments.request_id
            )
            if not arguments.wait:
                print(request_id)
                return EXIT_OK
            try:
                result = await client.wait_for(request_id, timeout_s=arguments.timeout)
            except ResultTimeoutError as error:
                print(f"error: {error} Is the coordinator running?", file=sys.stderr)
                return EXIT_TIMEOUT
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        return EXIT_OK if result["status"] == "completed" else EXIT_FAILED_RESULT

    return asyncio.run(send())


def _read_input(arguments: argparse.Namespace) -> tuple[bytes | str, str]:
    """The flow input's JSON text, and where it came from (for error sentences).

    A file or stdin carries inputs over the 128 KiB a command-line argument may hold.
    """
    if arguments.input_file is not None and arguments.input is not None:
        raise SetupError("Give the input either as an argument or with --input-file, not both.")
    if arguments.input_file is None and arguments.input is None:
        raise SetupError(
            "Give the flow input: a JSON object, @PATH, - (stdin) or --input-file PATH."
        )
    path: Path | None = arguments.input_file
    if path is None and arguments.input.startswith("@"):
        path = Path(arguments.input[1:])
    if path is not None:
        try:
            return path.read_bytes(), f" in {path}"
        except OSError as error:
            raise SetupError(f"Cannot read the input file {path}: {error.strerror}.") from None
    if arguments.input == "-":
        return sys.stdin.buffer.read(), " on stdin"
    return arguments.input, ""


def _check(arguments: argparse.Namespace) -> int:
    from orchestrator.flow_files import load_flows

    registry = load_flows(arguments.path, catalog_path=arguments.services)
    for flow in registry.flows.values():
        print(
            f"ok: flow '{flow.name}' version {flow.version} ({len(flow.steps)} steps) "
            f"in {flow.source}"
        )
        for warning in flow.warnings:
            print(f"warning: {flow.source}: {warning}")
    return EXIT_OK


def _broker(arguments: argparse.Namespace) -> int:
    from orchestrator import localkafka

    settings = localkafka.BrokerSettings()
    if arguments.port is not None:
        settings = localkafka.BrokerSettings(port=arguments.port)
    if arguments.action == "up":
        info = localkafka.start(settings)
        print(f"export KAFKA_BOOTSTRAP_SERVERS={info.bootstrap}")
    elif arguments.action == "down":
        localkafka.stop(settings)
    else:
        state = localkafka.status(settings)
        if state.running:
            print(
                f"Kafka broker running on {state.bootstrap} (pid {state.pid}); "
                f"log: {state.log_path}"
            )
        else:
            print(f"No Kafka broker is running on {state.bootstrap}.")
            return EXIT_ERROR
    return EXIT_OK


def _adapter(arguments: argparse.Namespace) -> int:
    from handlers.sdk import Service
    from handlers.worker import build_worker
    from orchestrator.catalog import import_service
    from orchestrator.kafka_security import faststream_security

    service = import_service(arguments.service, where=f"adapter {arguments.service}")
    if arguments.command_topic:
        service = Service.with_command_topic(service, arguments.command_topic)
    settings = CoordinatorSettings.from_env()
    from handlers.tracing import configure_from_env

    configure_from_env(f"adapter-{service.name}")
    broker, _ = build_worker(
        service,
        bootstrap_servers=settings.bootstrap_servers,
        security=faststream_security(settings),
        group_id=arguments.group_id,
        dead_letter_topic=arguments.dead_letter_topic,
        reply_topics=arguments.reply_topics or [settings.reply_topic],
        concurrency=arguments.concurrency,
    )

    async def serve() -> None:
        stop = _stop_on_signals()
        await broker.start()
        print(
            f"Adapter '{service.name}' serving {service.command_topic}. Ctrl-C stops it.",
            flush=True,
        )
        try:
            await stop.wait()
        finally:
            await broker.stop()

    from orchestrator import eventloop

    eventloop.run(serve())
    return EXIT_OK


def _demo(arguments: argparse.Namespace) -> int:
    from handlers.demo.run import run_demo

    return run_demo()


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    return stop


if __name__ == "__main__":
    sys.exit(main())
