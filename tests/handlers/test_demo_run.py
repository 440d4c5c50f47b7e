"""The demo command, run as a user runs it, over the test broker."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.kafka
def test_demo_composes_results_and_reports_dead_letters(kafka_bootstrap: str) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "demo"],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap},
        check=False,
    )

    assert completed.returncode == 0, completed.stderr[-3000:]
    out = completed.stdout
    assert "total (in-stock lines): 61.00" in out
    assert "error step.business_error [products#1]" in out
    assert "error step.business_error [order]" in out
    assert "Sent 5 requests, got 5 results (3 failed, as expected)." in out
    assert "2 request records went to the dead-letter topic" in out
    assert "input.invalid, flow.unknown" in out or "flow.unknown, input.invalid" in out
    # place-order: a success, a declined card (stock released), a carrier outage
    # (retried, then the charge refunded and the stock released).
    success, declined, outage = out.split("== ")[-3:]
    assert "status: completed, complete" in success
    assert "steps: reserve ok (1 attempt), charge ok (1 attempt), ship ok (1 attempt)" in success
    assert "payments ledger: charged ch-" in success
    assert "status: failed" in declined
    assert "reserve compensated (1 attempt, 1 undone), charge failed (1 attempt)" in declined
    assert "ship not_run" in declined
    assert "payments ledger: nothing charged" in declined
    assert "charge compensated (1 attempt, 1 undone), ship failed (3 attempts)" in outage
    assert "the shipments service answered 503 to 3 requests" in outage
    charged = outage.split("payments ledger: charged ")[1].split()[0]
    assert f"refunded {charged} 36.50" in outage
    assert "Traceback" not in completed.stderr
