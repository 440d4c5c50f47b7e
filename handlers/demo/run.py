"""The demo, end to end on a real Apache Kafka broker: order-details and place-order.

Starts (or reuses) a broker, the six HTTP services, the Kafka-native inventory
adapter as its own process, and the coordinator; sends a few order-details
requests and prints each composed result; then runs the place-order saga three
times (a success, a declined card, a carrier outage) and prints what was undone,
from the services' own records; and stops everything it started, each by its own
pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from handlers.demo.services import DemoHttpServices
from handlers.demo.shop import DECLINED_CARD
from orchestrator.client import OrchestratorClient
from orchestrator.flow_files import load_flows
from orchestrator.kafka_security import client_options
from orchestrator.localkafka import BrokerSettings, bootstrap_from_env, running_broker
from orchestrator.runtime.coordinator import SagaCoordinator
from orchestrator.settings import CoordinatorSettings

FLOWS = Path(__file__).parent / "flows"

REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    (
        "An order whose products are all known (the grinder is out of stock)",
        "order-details",
        {"order_id": "o-1"},
    ),
    ("An order naming a product that does not exist", "order-details", {"order_id": "o-2"}),
    ("An order that does not exist", "order-details", {"order_id": "o-404"}),
    ("Input that fails the flow's input schema", "order-details", {"order": "o-1"}),
    ("A flow nobody declared", "order-history", {"user_id": "u-1"}),
]


ORDER = {
    "items": [{"product_id": "p-1", "qty": 1}, {"product_id": "p-2", "qty": 1}],
    "amount": 36.5,
    "address": "1 Analytical Way, London",
}
PLACE_ORDERS: list[tuple[str, dict[str, Any], bool]] = [
    ("An order that goes through", {"order_id": "o-100", "card": "4242-4242-4242-4242"}, False),
    (
        "A card the issuer declines: the reservation is released",
        {"order_id": "o-101", "card": DECLINED_CARD},
        False,
    ),
    (
        "The carrier is down: three tries, then the charge is refunded and the stock released",
        {"order_id": "o-102", "card": "4242-4242-4242-4242"},
        True,
    ),
]


def say(line: str = "") -> None:
    """Print a line of the demo's narration."""
    print(line, flush=True)


def run_demo() -> int:
    """Run the whole demo; returns the process exit code."""
    # The narration tells the story; the clients' start-up chatter (a group
    # coordinator not yet elected on a fresh broker) and the rejection warnings
    # (reported below from the dead-letter topic) would only bury it.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    logging.getLogger("orchestrator.runtime.coordinator").setLevel(logging.ERROR)
    external = bootstrap_from_env()
    if external:
        say(f"Using the Kafka broker at {external} (KAFKA_BOOTSTRAP_SERVERS).")
        return asyncio.run(_demo(external))
    with running_broker(BrokerSettings()) as broker:
        return asyncio.run(_demo(broker.bootstrap))


async def _demo(bootstrap: str) -> int:
    prefix = f"demo.{uuid.uuid4().hex[:8]}"
    settings = CoordinatorSettings.from_env(bootstrap_servers=bootstrap, partitions=3).with_topics(
        prefix
    )
    command_topic = f"{prefix}.inventory.commands"
    with DemoHttpServices() as services:
        os.environ.update(services.env)
        os.environ["DEMO_INVENTORY_TOPIC"] = command_topic
        for name, server in services.servers.items():
            say(f"Started the {name} service at {server.url}.")
        registry = load_flows(FLOWS)
        async with SagaCoordinator(registry=registry, settings=settings) as coordinator:
            say(
                f"Started the saga coordinator on {settings.request_topic} "
                f"(flows: {', '.join(registry.flows)})."
            )
            with _inventory_worker(
                bootstrap, command_topic, settings.dead_letter_topic, settings.reply_topic
            ):
                await asyncio.wait_for(coordinator.assigned.wait(), timeout=60)
                async with OrchestratorClient(settings) as client:
                    failures = 0
                    for title, flow, flow_input in REQUESTS:
                        say()
                        say(f"== {title}: {flow} {flow_input}")
                        started = time.monotonic()
                        result = await client.run(flow, flow_input, timeout_s=60)
                        elapsed_ms = (time.monotonic() - started) * 1000
                        _print_result(result, elapsed_ms)
                        failures += result["status"] != "completed"
                    say()
                    say(
                        f"Sent {len(REQUESTS)} requests, got {len(REQUESTS)} results "
                        f"({failures} failed, as expected)."
                    )
                    dead = await _dead_letters(settings, expect=2)
                    say(
                        f"{len(dead)} request records went to the dead-letter topic "
                        f"{settings.dead_letter_topic}: {', '.join(dead)}."
                    )
                    await _place_orders(client, services)
    say()
    say("Stopped the coordinator, the inventory adapter and the HTTP services.")
    return 0


async def _place_orders(client: OrchestratorClient, services: DemoHttpServices) -> None:
    say()
    say("The place-order saga: reserve stock (Kafka), charge the card, book the shipment (HTTP).")
    for title, order, carrier_down in PLACE_ORDERS:
        services.shipments.down = carrier_down
        ledger_before = len(services.payments.ledger)
        shipment_tries_before = services.shipments.attempts
        flow_input = {**ORDER, **order}
        say()
        say(f"== {title}: place-order {order['order_id']}")
        started = time.monotonic()
        result = await client.run("place-order", flow_input, timeout_s=60)
        elapsed_ms = (time.monotonic() - started) * 1000
        complete = ", complete" if result["complete"] else ""
        say(f"   status: {result['status']}{complete} (round trip {elapsed_ms:.0f} ms)")
        data = result.get("data")
        if data:
            say(
                f"   reserved {data['reservation_id']}, charged {data['charge_id']} "
                f"{data['amount']:.2f}, shipment {data['tracking_number']}"
            )
        say(f"   steps: {_step_line(result)}")
        for error in result["errors"]:
            say(f"   error {error['code']} [{error['call'] or error['step']}]: {error['message']}")
        tries = services.shipments.attempts - shipment_tries_before
        if carrier_down:
            say(f"   the shipments service answered 503 to {tries} requests")
        ledger = services.payments.ledger[ledger_before:]
        entries = ", ".join(f"{event} {charge} {amount:.2f}" for event, charge, amount in ledger)
        say(f"   payments ledger: {entries or 'nothing charged'}")
    services.shipments.down = False


def _step_line(result: dict[str, Any]) -> str:
    parts = []
    for step in result["steps"]:
        attempts = step["attempts"]
        undone = f", {step['compensated_calls']} undone" if step["compensated_calls"] else ""
        tries = f" ({attempts} attempt{'s' if attempts != 1 else ''}{undone})" if attempts else ""
        parts.append(f"{step['step']} {step['status']}{tries}")
    return ", ".join(parts)


@contextlib.contextmanager
def _inventory_worker(
    bootstrap: str, command_topic: str, dead_letter_topic: str, reply_topic: str
) -> Iterator[None]:
    command = [
        sys.executable,
        "-m",
        "orchestrator.cli",
        "adapter",
        "handlers.demo.inventory:inventory",
        "--command-topic",
        command_topic,
        "--dead-letter-topic",
        dead_letter_topic,
        "--reply-topic",
        reply_topic,
    ]
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    # Its errors go to a file, not a pipe: a pipe nobody reads can fill and block it.
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=errors)
        say(f"Started the inventory adapter (Kafka-native, pid {process.pid}) on {command_topic}.")
        try:
            yield
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.returncode not in (0, -signal.SIGTERM):
                errors.seek(0)
                say(
                    f"The inventory adapter exited with {process.returncode}: "
                    f"{errors.read().decode(errors='replace')[-2000:]}"
                )


async def _dead_letters(settings: CoordinatorSettings, *, expect: int) -> list[str]:
    """The ``dlq_code`` of each record on the dead-letter topic (read from the start)."""
    consumer = AIOKafkaConsumer(
        settings.dead_letter_topic,
        bootstrap_servers=settings.bootstrap_servers,
        **client_options(settings),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    codes: list[str] = []
    try:
        deadline = time.monotonic() + 10
        while len(codes) < expect and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                codes += [dict(record.headers).get("dlq_code", b"?").decode() for record in records]
    finally:
        await consumer.stop()
    return codes


def _print_result(result: dict[str, Any], elapsed_ms: float) -> None:
    say(f"   status: {result['status']} (round trip {elapsed_ms:.0f} ms)")
    data = result.get("data")
    if data:
        customer = data["customer"]
        store = data["store"]
        say(
            f"   order {data['order_id']} for {customer['name']} <{customer['email']}> "
            f"at {store['name']}, {store['city']}"
        )
        for line in data["lines"]:
            say(
                f"     {line['qty']} x {line['name']:<20} "
                f"@ {line['unit_price']:>7.2f} = {line['line_total']:>8.2f}"
            )
        say(f"   total (in-stock lines): {data['total']:.2f}")
    if result["steps"]:
        steps = ", ".join(
            f"{s['step']} {s['status']} ({s['calls']} call{'s' if s['calls'] != 1 else ''})"
            for s in result["steps"]
        )
        say(f"   steps: {steps}")
    for error in result["errors"]:
        where = f" [{error['call'] or error['step']}]" if error.get("step") else ""
        say(f"   error {error['code']}{where}: {error['message']}")
