"""Saga-core throughput: the order-details flow driven with canned replies, no I/O."""

from __future__ import annotations

import time
from pathlib import Path

from handlers.demo import data
from orchestrator.flow_files import load_flows
from orchestrator.saga import CallReplied, DispatchCall, PublishResult, decide, start_saga

FLOWS = Path(__file__).parents[1] / "handlers" / "demo" / "flows"


def canned_reply(action: DispatchCall) -> object:
    """What the demo services would answer."""
    if action.service == "orders":
        return data.ORDERS["o-1"]
    if action.service == "users":
        return data.USERS["u-1"]
    if action.service == "stores":
        return data.STORES["s-1"]
    if action.service == "products":
        return data.PRODUCTS[action.input["product_id"]]
    return {
        "levels": [
            {"product_id": p, "available": data.STOCK.get(p, 0)}
            for p in action.input["product_ids"]
        ]
    }


def run(sagas: int = 20_000) -> dict[str, float]:
    """Run ``sagas`` complete sagas; returns sagas/s and decisions/s."""
    flow = load_flows(FLOWS).flows["order-details"]
    decisions = 0
    completed = 0
    started = time.perf_counter()
    for number in range(sagas):
        state, actions = start_saga(
            flow, request_id=f"r-{number}", input={"order_id": "o-1"}, now_ms=0
        )
        queue = [action for action in actions if isinstance(action, DispatchCall)]
        while queue:
            action = queue.pop()
            reply = CallReplied(
                call=action.call, attempt=1, status="ok", at_ms=1, output=canned_reply(action)
            )
            state, actions = decide(flow, state, reply)
            decisions += 1
            for follow_up in actions:
                if isinstance(follow_up, DispatchCall):
                    queue.append(follow_up)
                elif isinstance(follow_up, PublishResult):
                    completed += follow_up.result["status"] == "completed"
    elapsed = time.perf_counter() - started
    assert completed == sagas, f"only {completed} of {sagas} sagas completed"
    return {
        "sagas": sagas,
        "seconds": elapsed,
        "sagas_per_s": sagas / elapsed,
        "decisions_per_s": decisions / elapsed,
    }
