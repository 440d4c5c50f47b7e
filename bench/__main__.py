"""``python -m bench``: print the benchmark figures.

Options by environment: ``BENCH_SAGAS`` (core, default 20000), ``BENCH_REQUESTS``
(end to end, default 2000), ``BENCH_WINDOW`` (requests in flight, default 200).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
from pathlib import Path

from bench import core, end_to_end
from orchestrator.localkafka import BrokerSettings, bootstrap_from_env, running_broker


def main() -> int:
    logging.basicConfig(level=logging.ERROR)
    sagas = int(os.environ.get("BENCH_SAGAS", "20000"))
    print(f"Saga core: {sagas} order-details sagas, canned replies, no I/O...", flush=True)
    figures = core.run(sagas)
    print(
        f"  {figures['sagas_per_s']:,.0f} sagas/s, {figures['decisions_per_s']:,.0f} decisions/s "
        f"({figures['seconds']:.2f} s)",
        flush=True,
    )
    requests = int(os.environ.get("BENCH_REQUESTS", "2000"))
    window = int(os.environ.get("BENCH_WINDOW", "200"))
    print(
        f"End to end over a real broker: latency one at a time, then {requests} requests "
        f"with {window} in flight...",
        flush=True,
    )
    external = bootstrap_from_env()
    if external:
        e2e = asyncio.run(end_to_end.run(external, requests=requests, window=window))
    else:
        with (
            tempfile.TemporaryDirectory(prefix="bench-kafka-") as runtime,
            running_broker(BrokerSettings(port=0, runtime_dir=Path(runtime))) as broker,
        ):
            e2e = asyncio.run(end_to_end.run(broker.bootstrap, requests=requests, window=window))
    print(
        f"  one at a time: p50 {e2e['seq_p50_ms']:.1f} ms, p99 {e2e['seq_p99_ms']:.1f} ms "
        f"({e2e['sequential_completed']:.0f}/{e2e['sequential']:.0f} completed)",
        flush=True,
    )
    print(
        f"  {window} in flight: {e2e['requests_per_s']:,.0f} requests/s "
        f"({e2e['completed']:.0f}/{e2e['requests']:.0f} completed in {e2e['seconds']:.1f} s); "
        f"p50 {e2e['p50_ms']:.0f} ms, p99 {e2e['p99_ms']:.0f} ms",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
