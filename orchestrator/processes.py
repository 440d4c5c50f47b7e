"""``orchestrator run --processes N``: N coordinator processes in one consumer group.

One Python process uses one core; scaling out on one machine is running more
coordinators in the same group (the group spreads the partitions, the changelog
moves their sagas). This starts N children, each a plain ``orchestrator run`` with
its own static member id (``<ORCH_GROUP_INSTANCE_ID>-<n>`` when that is set) and its
own metrics port (``ORCH_METRICS_PORT + n - 1`` when that is set), passes
SIGINT/SIGTERM on to each by its pid, and waits for them. If a child ends by itself
the others are stopped too and the exit status is 1, so the supervisor above (systemd,
Kubernetes) restarts the whole set and the changelog resumes every saga.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

from orchestrator.errors import SetupError

EXIT_OK = 0
EXIT_ERROR = 1


async def supervise(flows: Path, *, processes: int, log_level: str, metrics_port: int = 0) -> int:
    """Run ``processes`` coordinators on ``flows`` until a signal or a child's end.

    ``metrics_port``: the validated settings' ``metrics_port`` (0: off); child n
    gets ``metrics_port + n - 1``, which must still be a port.

    Raises:
        SetupError: The children's metrics ports would run past 65535.
    """
    last_port = metrics_port + processes - 1
    if metrics_port and last_port > 65535:
        raise SetupError(
            f"ORCH_METRICS_PORT={metrics_port} with --processes {processes} needs ports up to "
            f"{last_port}, past 65535: set ORCH_METRICS_PORT to at most {65536 - processes}."
        )
    base_id = os.environ.get("ORCH_GROUP_INSTANCE_ID", "")
    children = []
    for number in range(1, processes + 1):
        env = dict(os.environ)
        if base_id:
            env["ORCH_GROUP_INSTANCE_ID"] = f"{base_id}-{number}"
        if metrics_port:
            env["ORCH_METRICS_PORT"] = str(metrics_port + number - 1)
        children.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "orchestrator",
                "--log-level",
                log_level,
                "run",
                str(flows),
                env=env,
            )
        )
    pids = ", ".join(str(child.pid) for child in children)
    print(f"Started {processes} coordinator processes (pids {pids}).", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    stopping = asyncio.ensure_future(stop.wait())
    ended = {asyncio.ensure_future(child.wait()) for child in children}
    await asyncio.wait({stopping, *ended}, return_when=asyncio.FIRST_COMPLETED)
    child_ended = not stopping.done()
    stopping.cancel()
    for child in children:
        if child.returncode is None:
            child.send_signal(signal.SIGTERM)
    codes = await asyncio.gather(*(child.wait() for child in children))
    if child_ended:
        print(
            "A coordinator process ended by itself (exit statuses: "
            f"{', '.join(str(code) for code in codes)}); the others were stopped. "
            "Restart the set: their sagas resume from the changelog.",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_ERROR
    return EXIT_OK if all(code == 0 for code in codes) else EXIT_ERROR
