"""Start, stop and inspect the local single-node KRaft broker.

The functions are synchronous and block for seconds; from async code call them
through ``asyncio.to_thread``.
"""

from __future__ import annotations

from orchestrator.errors import BrokerStartError

from .config import BrokerSettings
from .fetch import ensure_kafka_jars
from .layout import (
    broker_command,
    format_storage_if_needed,
    recorded_ports,
    rotate_server_log,
    write_configs,
)
from .locking import file_lock
from .models import BrokerInfo, BrokerStatus
from .ports import pick_free_ports, require_free_ports
from .procs import is_broker, is_running, read_pid, spawn_detached, terminate, write_pid
from .progress import Progress, tail, to_stderr
from .readiness import answers, wait_until_ready
from .tools import require_java

_LOCK_NAME = "broker.lock"


def start(settings: BrokerSettings | None = None, *, progress: Progress = to_stderr) -> BrokerInfo:
    """Start the broker, or reuse the one already running for these settings.

    Args:
        settings: Broker settings; defaults to ``BrokerSettings()``. ``port=0``
            picks free client and controller ports.
        progress: Receives human-readable progress lines.

    Returns:
        The ready broker.

    Raises:
        ToolMissingError: If ``java`` (or, on the first run, ``mvn``) is missing.
        BrokerFetchError: If Maven cannot fetch the Kafka jars.
        BrokerStartError: If a port is taken, or the broker exits or does not
            answer in time (it is then stopped).
    """
    settings = (settings or BrokerSettings()).absolute()
    java = require_java()
    if settings.runtime_dir is None and not settings.has_concrete_ports:
        # The default runtime folder is named after the port, so pick it first.
        settings = settings.with_ports(*pick_free_ports(2))
    with file_lock(settings.broker_dir / _LOCK_NAME):
        pid = _running_pid(settings)
        if pid is not None:
            return _reuse(_with_recorded_ports(settings), pid, progress)
        # A port=0 request gets fresh ports: the previously recorded ones may be taken now.
        if not settings.has_concrete_ports:
            settings = settings.with_ports(*pick_free_ports(2))
        require_free_ports(settings.port, settings.resolved_controller_port)
        libs = ensure_kafka_jars(settings, progress=progress)
        write_configs(settings)
        format_storage_if_needed(settings, java=java, libs=libs, progress=progress)
        rotate_server_log(settings)
        progress(f"Starting Kafka broker on {settings.bootstrap}…")
        pid = spawn_detached(
            broker_command(settings, java=java, libs=libs), log=settings.stdout_log
        )
        write_pid(settings.pid_file, pid)
        try:
            return _await_ready(settings, pid, progress)
        except KeyboardInterrupt:
            # An aborted `broker up` must not leave a half-started broker behind.
            progress(f"Interrupted: stopping the starting Kafka broker (pid {pid})…")
            terminate(pid, properties_file=settings.properties_file, timeout=settings.stop_timeout)
            settings.pid_file.unlink(missing_ok=True)
            raise


def stop(settings: BrokerSettings | None = None, *, progress: Progress = to_stderr) -> bool:
    """Stop the broker recorded in the runtime folder's ``broker.pid``.

    Sends SIGTERM to that pid only, waits ``settings.stop_timeout`` seconds,
    then sends SIGKILL. Not running is not an error.

    Args:
        settings: The settings the broker was started with (for ``port=0``,
            ``BrokerInfo.settings`` or the same ``runtime_dir``).
        progress: Receives human-readable progress lines.

    Returns:
        True if a broker was stopped, False if none was running.

    Raises:
        BrokerStartError: If the process survives SIGKILL.
    """
    settings = (settings or BrokerSettings()).absolute()
    if not settings.broker_dir.is_dir():
        progress(f"No broker is running {_where(settings)}.")
        return False
    with file_lock(settings.broker_dir / _LOCK_NAME):
        settings = _with_recorded_ports(settings)
        pid = _running_pid(settings)
        if pid is None:
            settings.pid_file.unlink(missing_ok=True)
            progress(f"No broker is running {_where(settings)}.")
            return False
        progress(f"Stopping Kafka broker on {settings.bootstrap} (pid {pid})…")
        gone = terminate(
            pid, properties_file=settings.properties_file, timeout=settings.stop_timeout
        )
        if not gone:
            raise BrokerStartError(f"Kafka broker pid {pid} did not exit even after SIGKILL.")
        settings.pid_file.unlink(missing_ok=True)
        progress(f"Kafka broker on {settings.bootstrap} stopped.")
        return True


def status(settings: BrokerSettings | None = None) -> BrokerStatus:
    """Report whether the broker of ``settings`` runs (without probing it).

    Args:
        settings: Broker settings; defaults to ``BrokerSettings()``.

    Returns:
        The broker's status.
    """
    settings = _with_recorded_ports((settings or BrokerSettings()).absolute())
    pid = _running_pid(settings)
    return BrokerStatus(
        running=pid is not None,
        pid=pid,
        bootstrap=settings.bootstrap,
        log_path=settings.server_log,
        runtime_dir=settings.broker_dir,
    )


def _running_pid(settings: BrokerSettings) -> int | None:
    pid = read_pid(settings.pid_file)
    if pid is not None and is_broker(pid, settings.properties_file):
        return pid
    return None


def _with_recorded_ports(settings: BrokerSettings) -> BrokerSettings:
    """For ``port=0``, adopt the ports of the broker last started in this folder."""
    if settings.has_concrete_ports:
        return settings
    recorded = recorded_ports(settings)
    return settings if recorded is None else settings.with_ports(*recorded)


def _where(settings: BrokerSettings) -> str:
    return f"on port {settings.port}" if settings.port else f"in {settings.broker_dir}"


def _info(settings: BrokerSettings, pid: int, *, started: bool) -> BrokerInfo:
    return BrokerInfo(
        bootstrap=settings.bootstrap,
        pid=pid,
        log_path=settings.server_log,
        runtime_dir=settings.broker_dir,
        settings=settings,
        started=started,
    )


def _reuse(settings: BrokerSettings, pid: int, progress: Progress) -> BrokerInfo:
    if not answers(settings.port):
        # It may still be booting, started by another command moments ago.
        progress(f"Waiting for the Kafka broker on {settings.bootstrap} (pid {pid}) to answer…")
        _await_ready(settings, pid, progress, reused=True)
    progress(f"Reusing the Kafka broker already running on {settings.bootstrap} (pid {pid}).")
    return _info(settings, pid, started=False)


def _await_ready(
    settings: BrokerSettings, pid: int, progress: Progress, *, reused: bool = False
) -> BrokerInfo:
    def alive() -> bool:
        # The pid is known to be this broker already; only its exit matters here.
        return is_running(pid)

    outcome = wait_until_ready(settings.port, timeout=settings.ready_timeout, alive=alive)
    if outcome == "ready":
        if not reused:
            ready = f"Kafka broker ready on {settings.bootstrap} (pid {pid})"
            progress(f"{ready}; log: {settings.server_log}")
        return _info(settings, pid, started=not reused)
    terminate(pid, properties_file=settings.properties_file, timeout=settings.stop_timeout)
    settings.pid_file.unlink(missing_ok=True)
    what = (
        "exited while starting"
        if outcome == "exited"
        else f"did not answer within {settings.ready_timeout:.0f} s and was stopped"
    )
    raise BrokerStartError(
        f"The Kafka broker on {settings.bootstrap} (pid {pid}) {what}.\n"
        f"Last lines of {settings.server_log}:\n{tail(settings.server_log)}\n"
        f"Last lines of {settings.stdout_log}:\n{tail(settings.stdout_log)}"
    )
