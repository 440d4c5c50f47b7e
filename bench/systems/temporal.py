"""Temporal as a benchmark peer: a dev server and a Python worker, each its own process.

The Temporal CLI (``temporal server start-dev``) cannot be built from the Go module
proxy, so ``bench/peers/temporal/server`` embeds ``go.temporal.io/server`` the way the
CLI's dev server does (all four services in one process, in-memory SQLite) and is
built once into :func:`cache_dir` with its Go caches there, so later builds take
seconds. The worker (:mod:`bench.peers.temporal.worker`) runs in a subprocess so its
CPU is read from ``/proc`` like the server's, apart from the load generator's; the
bench process only holds the client that starts each workflow and waits for its
result, which is how an application would call Temporal.

``local_activities=True`` runs the variant whose GETs are local activities (executed
in the worker and recorded when the workflow task completes) instead of activities
dispatched through the server's task queue.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from importlib.metadata import version
from pathlib import Path
from typing import IO, Any

from temporalio.client import Client

from bench.peers.temporal.workflows import OrderDetails, OrderDetailsLocal
from bench.systems.base import SystemUnavailable, cache_dir, tail_log, terminate

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SERVER_SOURCE = PROJECT_ROOT / "bench" / "peers" / "temporal" / "server"
SERVER_PORTS = 5
"""The server takes the frontend gRPC port and the next four (HTTP, history, matching, worker)."""
NAMESPACE = "default"
START_TIMEOUT_S = 60.0
WARMUP_TIMEOUT_S = 60.0
WARMUP_CALLS = 50
BUILD_PROGRESS_S = 30.0


def find_go() -> str | None:
    """The ``go`` command: on PATH, else the standard install location."""
    found = shutil.which("go")
    if found:
        return found
    default = Path("/usr/local/go/bin/go")
    return str(default) if default.exists() else None


def server_binary() -> Path:
    """Where the dev server binary for the current sources lives.

    The name carries a digest of ``main.go``, ``go.mod`` and ``go.sum``, so editing
    the server (or bumping its module version) builds a new binary instead of
    silently reusing a stale one.
    """
    digest = hashlib.sha256()
    for name in ("main.go", "go.mod", "go.sum"):
        path = SERVER_SOURCE / name
        if path.exists():
            digest.update(name.encode() + b"\0" + path.read_bytes())
    return cache_dir("temporal") / "bin" / f"temporal-dev-server-{digest.hexdigest()[:12]}"


async def build_server(binary: Path) -> None:
    """``go build`` the dev server into ``binary``, printing progress while it runs.

    GOPATH, GOMODCACHE and GOCACHE point into the cache folder so the modules and
    compiled packages survive for the next build; ``-mod=mod`` lets Go complete
    ``go.sum`` itself; GOPROXY is whatever the environment says.

    Raises:
        SystemUnavailable: if Go is missing or the build fails.
    """
    go = find_go()
    if go is None:
        raise SystemUnavailable("Go is not installed (needed once to build the Temporal server).")
    cache = cache_dir("temporal")
    env = {
        **os.environ,
        "GOPATH": str(cache / "go"),
        "GOMODCACHE": str(cache / "go" / "pkg" / "mod"),
        "GOCACHE": str(cache / "go-build"),
        "GOFLAGS": "-mod=mod",
    }
    binary.parent.mkdir(parents=True, exist_ok=True)
    partial = binary.with_name(binary.name + ".partial")
    log_path = cache / "build.log"
    print("Building the Temporal dev server (first time ~4 minutes)...", flush=True)
    started = time.monotonic()
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            go,
            "build",
            "-o",
            str(partial),
            ".",
            cwd=SERVER_SOURCE,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            while True:
                try:
                    code = await asyncio.wait_for(process.wait(), BUILD_PROGRESS_S)
                    break
                except TimeoutError:
                    print(f"  still building ({time.monotonic() - started:.0f} s)", flush=True)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    if code != 0:
        print(tail_log(log_path), file=sys.stderr)
        raise SystemUnavailable(f"Building the Temporal dev server failed (see {log_path}).")
    partial.replace(binary)
    for old in binary.parent.glob("temporal-dev-server-*"):
        if old != binary:
            old.unlink(missing_ok=True)
    print(f"Built the Temporal dev server in {time.monotonic() - started:.0f} s.", flush=True)


def free_port_block(count: int) -> int:
    """A port ``p`` on 127.0.0.1 such that ``p`` .. ``p + count - 1`` are all free now."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base: int = probe.getsockname()[1]
        if base + count <= 65536 and all(_port_free(base + i) for i in range(count)):
            return base
    raise SystemUnavailable(f"Found no {count} consecutive free ports on 127.0.0.1.")


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class TemporalSystem:
    """Order details as a Temporal workflow (see the module docstring)."""

    def __init__(self, mock_url: str, *, local_activities: bool = False) -> None:
        self.mock_url = mock_url
        self.local_activities = local_activities
        self.name = "temporal-local" if local_activities else "temporal"
        self.address = ""
        self.task_queue = f"order-details-{uuid.uuid4().hex[:8]}"
        self._ids = itertools.count()
        self._client: Client | None = None
        self._server: subprocess.Popen[bytes] | None = None
        self._worker: subprocess.Popen[bytes] | None = None
        self._logs: list[IO[bytes]] = []
        self._tmp: Path | None = None
        self._versions: dict[str, str] = {"temporalio": version("temporalio")}

    def installed(self) -> bool:
        """Whether the dev server is built already (a quick run builds nothing)."""
        return server_binary().exists()

    async def start(self) -> None:
        binary = server_binary()
        if not binary.exists():
            await build_server(binary)
        self._versions.update(self._binary_versions(binary))
        self._tmp = Path(tempfile.mkdtemp(prefix="bench-temporal-"))
        try:
            await self._start_server(binary)
            await self._start_worker()
            await self._warm_up()
        except BaseException:
            await self.stop()
            raise

    async def run_one(self, number: int) -> dict[str, Any]:
        assert self._client is not None, "start() first"
        order_id = f"o-{number}"
        workflow_id = f"order-details-{order_id}-{self.task_queue}-{next(self._ids)}"
        if self.local_activities:
            return await self._client.execute_workflow(
                OrderDetailsLocal.run, order_id, id=workflow_id, task_queue=self.task_queue
            )
        return await self._client.execute_workflow(
            OrderDetails.run, order_id, id=workflow_id, task_queue=self.task_queue
        )

    def pids(self) -> list[int]:
        return [p.pid for p in (self._server, self._worker) if p is not None and p.poll() is None]

    def versions(self) -> dict[str, str]:
        return dict(self._versions)

    async def stop(self) -> None:
        """Stop the worker first (it shuts down gracefully), then the server."""
        self._client = None
        await terminate(self._worker)
        await terminate(self._server)
        self._worker = self._server = None
        for log in self._logs:
            log.close()
        self._logs.clear()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    @staticmethod
    def _binary_versions(binary: Path) -> dict[str, str]:
        """The server module and Go versions, read from the binary's own build info."""
        try:
            out = subprocess.run(
                [str(binary), "-version"], capture_output=True, check=True, timeout=30
            ).stdout
            found = json.loads(out)
        except (OSError, subprocess.SubprocessError, ValueError) as error:
            raise SystemUnavailable(
                f"The Temporal dev server binary does not run: {error}."
            ) from error
        return {"temporal-server": str(found["server"]), "go": str(found["go"])}

    def _spawn(self, argv: list[str], log_name: str) -> subprocess.Popen[bytes]:
        assert self._tmp is not None
        log = (self._tmp / log_name).open("wb")
        self._logs.append(log)
        return subprocess.Popen(
            argv,
            cwd=PROJECT_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def _check_alive(self, process: subprocess.Popen[bytes], what: str, log_name: str) -> None:
        if process.poll() is not None:
            assert self._tmp is not None
            print(tail_log(self._tmp / log_name), file=sys.stderr)
            raise SystemUnavailable(f"The Temporal {what} exited at start (code {process.poll()}).")

    async def _start_server(self, binary: Path) -> None:
        """Start the server on a fresh block of ports; wait until the frontend answers."""
        port = free_port_block(SERVER_PORTS)
        self.address = f"127.0.0.1:{port}"
        self._server = self._spawn([str(binary), "-port", str(port)], "server.log")
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            self._check_alive(self._server, "dev server", "server.log")
            try:
                self._client = await Client.connect(self.address, namespace=NAMESPACE)
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise SystemUnavailable(
                        f"The Temporal dev server did not answer on {self.address} "
                        f"within {START_TIMEOUT_S:.0f} s."
                    ) from None
                await asyncio.sleep(0.2)

    async def _start_worker(self) -> None:
        """Start the worker process; wait for its ready line."""
        self._worker = self._spawn(
            [
                sys.executable,
                "-m",
                "bench.peers.temporal.worker",
                "--address",
                self.address,
                "--namespace",
                NAMESPACE,
                "--task-queue",
                self.task_queue,
                "--mock-url",
                self.mock_url,
            ],
            "worker.log",
        )
        assert self._tmp is not None
        log = self._tmp / "worker.log"
        deadline = time.monotonic() + START_TIMEOUT_S
        while b'"worker":"ready"' not in log.read_bytes():
            self._check_alive(self._worker, "worker", "worker.log")
            if time.monotonic() > deadline:
                raise SystemUnavailable(
                    f"The Temporal worker was not ready within {START_TIMEOUT_S:.0f} s."
                )
            await asyncio.sleep(0.1)

    async def _warm_up(self) -> None:
        """One workflow, then a concurrent batch: connections, pollers and caches warm."""
        try:
            async with asyncio.timeout(WARMUP_TIMEOUT_S):
                first = await self.run_one(1)
                assert first["order_id"] == "o-1", first
                await asyncio.gather(*(self.run_one(n) for n in range(WARMUP_CALLS)))
        except TimeoutError:
            assert self._tmp is not None
            print(tail_log(self._tmp / "worker.log"), file=sys.stderr)
            raise SystemUnavailable(
                f"Temporal did not complete the warm-up workflows within {WARMUP_TIMEOUT_S:.0f} s."
            ) from None
