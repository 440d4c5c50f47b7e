"""The demo inventory adapter for the chaos run: the demo's own operations, with every
reserve and release appended to a JSON-lines file, one :class:`~bench.chaos.oracle.Effect`
a line, in the order the adapter ran them.

Served as its own process, like any adapter::

    CHAOS_EFFECTS_FILE=effects.jsonl orchestrator adapter bench.chaos.inventory:inventory
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import orjson

from bench.chaos.oracle import Effect
from handlers.context import CallContext
from handlers.demo import inventory as demo
from handlers.demo.inventory import (
    Released,
    ReleaseRequest,
    Reservation,
    ReserveRequest,
    StockLevels,
    StockQuery,
)
from handlers.errors import BusinessError
from handlers.sdk import Service

EFFECTS_ENV = "CHAOS_EFFECTS_FILE"

inventory = Service("inventory", command_topic="demo.inventory.commands")


def record(effect: Effect) -> None:
    """Append ``effect`` to ``$CHAOS_EFFECTS_FILE`` (nothing when it is not set)."""
    path = os.environ.get(EFFECTS_ENV)
    if path:
        with open(path, "ab") as sink:
            sink.write(orjson.dumps(asdict(effect)) + b"\n")


def read_effects(path: Path) -> list[Effect]:
    """The effects a run's adapter recorded, in order (none if the file is missing)."""
    if not path.is_file():
        return []
    return [Effect(**orjson.loads(line)) for line in path.read_bytes().splitlines() if line.strip()]


@inventory.operation("stock_levels")
async def stock_levels(query: StockQuery) -> StockLevels:
    """The demo's stock levels (a read: not recorded)."""
    return await demo.stock_levels(query)


@inventory.operation
async def reserve(request: ReserveRequest, ctx: CallContext) -> Reservation:
    """The demo's reserve, recorded as ``reserved``, ``repeat`` or ``refused``."""
    held = ctx.idempotency_key in demo.RESERVATIONS
    try:
        reservation = await demo.reserve(request, ctx)
    except BusinessError:
        record(Effect("inventory", "reserve", ctx.idempotency_key, "refused"))
        raise
    outcome = "repeat" if held else "reserved"
    record(Effect("inventory", "reserve", ctx.idempotency_key, outcome, reservation.reservation_id))
    return reservation


@inventory.operation
async def release(request: ReleaseRequest, ctx: CallContext) -> Released:
    """The demo's release, recorded as ``released`` or ``noop``."""
    released = await demo.release(request)
    outcome = "released" if released.released else "noop"
    record(Effect("inventory", "release", ctx.idempotency_key, outcome, request.reservation_id))
    return released
