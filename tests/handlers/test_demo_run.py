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
    assert "Traceback" not in completed.stderr
