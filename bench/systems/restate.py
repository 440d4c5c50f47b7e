"""Restate as a benchmark peer: ``restate-server`` and a Python SDK service, each its own process.

The server is the official single binary, installed once from npm
(``@restatedev/restate-server``, whose per-platform optional dependency carries the
binary) into :func:`cache_dir`; it is run directly, not through the package's Node
wrapper, so the pid the bench reads CPU time from is the server's own. Every start
gets a fresh data folder and three free loopback ports (ingress, admin, node-to-node
fabric) written into a TOML config file, with Unix sockets, the web UI and telemetry
off; ``RESTATE_*`` variables are removed from the server's environment because they
would override that file. Everything else is the server's default (24 partitions,
the local single-node setup ``restate-server`` provisions by itself), as a user
trying Restate would run it.

The service (:mod:`bench.peers.restate.service`) runs under hypercorn in a
subprocess, is registered through the admin API, and the bench process calls the
ingress over HTTP (``POST /OrderDetails/run``) with one keep-alive aiohttp session,
which is how an application calls a Restate service synchronously. Each call is a
durable invocation: the server journals the input, each of the seven GETs and the
result before it answers.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from importlib.metadata import version
from pathlib import Path
from typing import IO, Any

import aiohttp
import orjson

from bench.systems.base import SystemUnavailable, cache_dir, tail_log, terminate

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SERVER_PACKAGE = "@restatedev/restate-server"
SERVER_VERSION = "1.7.12"
"""The server release installed and run; 1.7 is the line the SDK 1.3 documents."""
SERVICE = "OrderDetails"
HANDLER = "run"
INSTALL_TIMEOUT_S = 600.0
INSTALL_PROGRESS_S = 30.0
START_TIMEOUT_S = 60.0
START_ATTEMPTS = 3
"""Fresh ports are drawn again if the server exits at start (a probed port was taken)."""
WARMUP_TIMEOUT_S = 60.0
WARMUP_CALLS = 50
HTTP_CONNECTIONS = 100
"""The bench's pool to the ingress: more than the highest concurrency a phase uses."""

_PLATFORMS = {
    ("Linux", "x86_64"): "linux-x64",
    ("Linux", "aarch64"): "linux-arm64",
    ("Darwin", "x86_64"): "darwin-x64",
    ("Darwin", "arm64"): "darwin-arm64",
}


class RestateError(Exception):
    """An invocation through the ingress did not answer 200."""


def platform_package() -> str | None:
    """The npm package carrying the server binary for this machine (None: no build)."""
    suffix = _PLATFORMS.get((platform.system(), platform.machine()))
    return f"{SERVER_PACKAGE}-{suffix}" if suffix else None


def install_dir() -> Path:
    """Where ``npm install --prefix`` puts the server (kept between runs)."""
    return cache_dir("restate")


def server_binary() -> Path | None:
    """The installed binary of :data:`SERVER_VERSION`, or None if it is not installed."""
    package = platform_package()
    if package is None:
        return None
    root = install_dir() / "node_modules" / package
    try:
        installed = json.loads((root / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None
    binary = root / "bin" / "restate-server"
    return binary if installed == SERVER_VERSION and binary.exists() else None


async def install_server() -> Path:
    """``npm install`` the server into :func:`install_dir`, printing progress.

    ``--ignore-scripts``: the package needs none (the binary ships in the platform
    package's tarball) and one dependency's install script only reports analytics.

    Raises:
        SystemUnavailable: if this platform has no build, npm is missing or the
            install fails.
    """
    package = platform_package()
    if package is None:
        raise SystemUnavailable(
            f"Restate publishes no server binary for {platform.system()} {platform.machine()}."
        )
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise SystemUnavailable(
            f"Node.js and npm are needed once to install the Restate server ({SERVER_PACKAGE})."
        )
    target = install_dir()
    log_path = target / "npm-install.log"
    print(f"Installing {SERVER_PACKAGE}@{SERVER_VERSION} with npm (first time only)...", flush=True)
    started = time.monotonic()
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            npm,
            "install",
            "--prefix",
            str(target),
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            f"{SERVER_PACKAGE}@{SERVER_VERSION}",
            cwd=target,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        code: int | None = None
        try:
            while code is None and time.monotonic() - started < INSTALL_TIMEOUT_S:
                try:
                    code = await asyncio.wait_for(process.wait(), INSTALL_PROGRESS_S)
                except TimeoutError:
                    print(f"  still installing ({time.monotonic() - started:.0f} s)", flush=True)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    binary = server_binary()
    if code != 0 or binary is None:
        print(tail_log(log_path), file=sys.stderr)
        raise SystemUnavailable(f"Installing the Restate server with npm failed (see {log_path}).")
    print(f"Installed the Restate server in {time.monotonic() - started:.0f} s.", flush=True)
    return binary


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1 now (all probes held open together)."""
    with ExitStack() as stack:
        probes = [stack.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]


def server_config(*, data_dir: Path, ingress: int, admin: int, fabric: int) -> str:
    """The server's TOML config: loopback-only TCP listeners on the given ports.

    ``listen-mode = "tcp"`` turns off the Unix sockets the server would also create
    in its data folder; ``bind-ip`` and each service's ``bind-port`` cascade (see
    the server's networking docs); ``bind-port`` at the top level is the node-to-node
    fabric, which also serves the metadata store and Prometheus metrics.
    """
    return f"""\
node-name = "bench"
base-dir = {json.dumps(str(data_dir))}
listen-mode = "tcp"
bind-ip = "127.0.0.1"
bind-port = {fabric}
auto-provision = true
disable-telemetry = true
log-format = "compact"
log-disable-ansi-codes = true

[admin]
bind-port = {admin}
disable-web-ui = true

[ingress]
bind-port = {ingress}
"""


class RestateSystem:
    """Order details as a Restate service invocation (see the module docstring)."""

    name = "restate"

    def __init__(self, mock_url: str) -> None:
        self.mock_url = mock_url
        self.ingress_url = ""
        self.admin_url = ""
        self.ports: dict[str, int] = {}
        self._session: aiohttp.ClientSession | None = None
        self._server: subprocess.Popen[bytes] | None = None
        self._handler: subprocess.Popen[bytes] | None = None
        self._logs: list[IO[bytes]] = []
        self._tmp: Path | None = None
        self._versions: dict[str, str] = {
            "restate-server": SERVER_VERSION,
            "restate-sdk": version("restate-sdk"),
            "hypercorn": version("hypercorn"),
        }

    def installed(self) -> bool:
        """Whether :meth:`start` can run without installing anything first."""
        return server_binary() is not None

    async def start(self) -> None:
        binary = server_binary() or await install_server()
        self._tmp = Path(tempfile.mkdtemp(prefix="bench-restate-"))
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=HTTP_CONNECTIONS),
            timeout=aiohttp.ClientTimeout(total=60),
        )
        try:
            await self._start_server(binary)
            deployment = await self._start_handler()
            await self._register(deployment)
            await self._warm_up()
        except BaseException:
            await self.stop()
            raise

    async def run_one(self, number: int) -> dict[str, Any]:
        assert self._session is not None, "start() first"
        body = orjson.dumps({"order_id": f"o-{number}"})
        async with self._session.post(
            f"{self.ingress_url}/{SERVICE}/{HANDLER}",
            data=body,
            headers={"content-type": "application/json"},
        ) as response:
            payload = await response.read()
            if response.status != 200:
                raise RestateError(f"{response.status}: {payload[:200].decode(errors='replace')}")
        result: dict[str, Any] = orjson.loads(payload)
        return result

    def pids(self) -> list[int]:
        return [p.pid for p in (self._server, self._handler) if p is not None and p.poll() is None]

    def versions(self) -> dict[str, str]:
        return dict(self._versions)

    async def stop(self) -> None:
        """Close the session; stop the server (it closes its connections), then the handler."""
        if self._session is not None:
            await self._session.close()
            self._session = None
        await terminate(self._server)
        await terminate(self._handler)
        self._server = self._handler = None
        for log in self._logs:
            log.close()
        self._logs.clear()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def _spawn(self, argv: list[str], log_name: str, **kwargs: Any) -> subprocess.Popen[bytes]:
        assert self._tmp is not None
        log = (self._tmp / log_name).open("wb")
        self._logs.append(log)
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, **kwargs
        )

    def _fail(self, message: str, log_name: str) -> SystemUnavailable:
        assert self._tmp is not None
        print(tail_log(self._tmp / log_name), file=sys.stderr)
        return SystemUnavailable(message)

    async def _start_server(self, binary: Path) -> None:
        """Start the server on fresh ports (again if it exits at start); wait until healthy."""
        assert self._tmp is not None
        env = {key: value for key, value in os.environ.items() if not key.startswith("RESTATE_")}
        for attempt in range(1, START_ATTEMPTS + 1):
            ingress, admin, fabric = free_ports(3)
            self.ports = {"ingress": ingress, "admin": admin, "fabric": fabric}
            data_dir = self._tmp / f"data-{attempt}"
            config = self._tmp / "restate.toml"
            config.write_text(
                server_config(data_dir=data_dir, ingress=ingress, admin=admin, fabric=fabric)
            )
            print(
                f"  restate-server: ingress {ingress}, admin {admin}, fabric {fabric}", flush=True
            )
            self._server = self._spawn(
                [str(binary), "--config-file", str(config), "--no-logo"],
                "server.log",
                cwd=self._tmp,
                env=env,
            )
            self.ingress_url = f"http://127.0.0.1:{ingress}"
            self.admin_url = f"http://127.0.0.1:{admin}"
            if await self._wait_healthy():
                return
            await terminate(self._server)
            if attempt == START_ATTEMPTS:
                raise self._fail(
                    f"restate-server exited at start {START_ATTEMPTS} times (code "
                    f"{self._server.returncode}).",
                    "server.log",
                )

    async def _wait_healthy(self) -> bool:
        """Wait for the admin and ingress health checks; False if the server exited."""
        assert self._server is not None
        assert self._session is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        timeout = aiohttp.ClientTimeout(total=2)
        for url in (f"{self.admin_url}/health", f"{self.ingress_url}/restate/health"):
            while True:
                if self._server.poll() is not None:
                    return False
                try:
                    async with self._session.get(url, timeout=timeout) as response:
                        if response.status == 200:
                            break
                except (aiohttp.ClientError, TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    raise self._fail(
                        f"restate-server was not healthy at {url} within {START_TIMEOUT_S:.0f} s.",
                        "server.log",
                    )
                await asyncio.sleep(0.1)
        async with self._session.get(f"{self.admin_url}/version") as response:
            found = await response.json()
        self._versions["restate-server"] = str(found.get("version", SERVER_VERSION))
        return True

    async def _start_handler(self) -> str:
        """Start the hypercorn service process; returns the URL it printed once listening."""
        assert self._tmp is not None
        self._handler = self._spawn(
            [sys.executable, "-m", "bench.peers.restate.service", "--mock-url", self.mock_url],
            "handler.log",
            cwd=PROJECT_ROOT,
        )
        log = self._tmp / "handler.log"
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            for line in log.read_bytes().splitlines():
                if line.startswith(b'{"url"'):
                    url: str = orjson.loads(line)["url"]
                    return url
            if self._handler.poll() is not None:
                raise self._fail(
                    f"The Restate service process exited at start (code {self._handler.poll()}).",
                    "handler.log",
                )
            if time.monotonic() > deadline:
                raise self._fail(
                    f"The Restate service did not listen within {START_TIMEOUT_S:.0f} s.",
                    "handler.log",
                )
            await asyncio.sleep(0.05)

    async def _register(self, deployment: str) -> None:
        """``POST /deployments``: the server discovers the service over HTTP/2 and stores it."""
        assert self._session is not None
        async with self._session.post(
            f"{self.admin_url}/deployments", json={"uri": deployment}
        ) as response:
            if response.status >= 300:
                text = (await response.text())[:300]
                raise SystemUnavailable(
                    f"Restate refused the deployment {deployment} ({response.status}: {text})."
                )

    async def _warm_up(self) -> None:
        """Retry one call until the ingress knows the service, then a concurrent batch.

        Right after registration the ingress may not route to the new service yet
        (it answers an error); a call that hangs instead (the handler's GETs keep
        failing and Restate keeps retrying them) ends at the timeout.
        """
        last_error = "no answer"
        try:
            async with asyncio.timeout(WARMUP_TIMEOUT_S):
                while True:
                    try:
                        first = await self.run_one(1)
                        break
                    except (RestateError, aiohttp.ClientError) as error:
                        last_error = str(error) or type(error).__name__
                        await asyncio.sleep(0.2)
                if first.get("order_id") != "o-1":
                    raise SystemUnavailable(f"Restate answered a wrong result: {first!r:.200}.")
                await asyncio.gather(*(self.run_one(n) for n in range(WARMUP_CALLS)))
        except TimeoutError:
            raise self._fail(
                f"Restate did not complete the warm-up calls within {WARMUP_TIMEOUT_S:.0f} s "
                f"(last error: {last_error}).",
                "handler.log",
            ) from None
