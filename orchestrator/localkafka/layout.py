"""The broker's runtime folder: its config files and formatted KRaft storage."""

from __future__ import annotations

import base64
import re
import subprocess
import uuid
from pathlib import Path

from orchestrator.errors import BrokerStartError

from .config import HOST, BrokerSettings
from .progress import Progress

_FORMAT_TIMEOUT_S = 120.0
_LISTENERS = re.compile(
    r"^listeners=PLAINTEXT://[^:]+:(\d+),CONTROLLER://[^:]+:(\d+)(?:,\S+)?\s*$", re.MULTILINE
)

_SERVER_PROPERTIES = """\
# Written by orchestrator.localkafka on every start; edits are overwritten.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@{host}:{controller_port}
listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}{extra_listeners}
advertised.listeners=PLAINTEXT://{host}:{port}{extra_listeners}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL
log.dirs={data_dir}
num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
"""

# Not "append: false": log4j2 re-reads its config when the JVM logs during
# shutdown, which would truncate the log at exit. start() rotates it instead.
_LOG4J2_YAML = """\
Configuration:
  Appenders:
    File:
      name: F
      fileName: "{server_log}"
      PatternLayout: {{pattern: "[%d] %p %m (%c)%n"}}
  Loggers:
    Logger:
      - {{name: kafka.request.logger, level: WARN}}
      - {{name: kafka.authorizer.logger, level: WARN}}
      - {{name: state.change.logger, level: WARN}}
      - {{name: org.apache.kafka.clients.NetworkClient, level: WARN}}
    Root: {{level: INFO, AppenderRef: [{{ref: F}}]}}
"""


def write_configs(settings: BrokerSettings) -> None:
    """Write ``server.properties`` and ``log4j2.yaml`` into the runtime folder.

    Args:
        settings: Settings with concrete ports and absolute paths.
    """
    settings.broker_dir.mkdir(parents=True, exist_ok=True)
    secure = settings.secure
    extra = "".join(f",{listener}" for listener in secure.listeners()) if secure else ""
    settings.properties_file.write_text(
        _SERVER_PROPERTIES.format(
            host=HOST,
            port=settings.port,
            controller_port=settings.resolved_controller_port,
            data_dir=settings.data_dir,
            extra_listeners=extra,
        )
        + (secure.properties() if secure else ""),
        encoding="utf-8",
    )
    settings.log4j_file.write_text(
        _LOG4J2_YAML.format(server_log=settings.server_log), encoding="utf-8"
    )


def rotate_server_log(settings: BrokerSettings) -> None:
    """Keep the previous run's log as ``server.log.1`` so the new log shows one run.

    Args:
        settings: Settings of the broker about to start.
    """
    if settings.server_log.is_file():
        settings.server_log.replace(settings.server_log.with_name("server.log.1"))


def broker_command(settings: BrokerSettings, *, java: str, libs: Path) -> list[str]:
    """Return the command line that runs the broker in the foreground.

    Args:
        settings: Settings with concrete ports and absolute paths.
        java: Path of the ``java`` executable.
        libs: Folder of the broker's jars.

    Returns:
        Program and arguments; ``procs.is_broker`` recognises the process by
        the ``kafka.Kafka`` main class and the ``server.properties`` path.
    """
    return [
        java,
        f"-Xms{settings.heap_min}",
        f"-Xmx{settings.heap_max}",
        # A JVM crash report goes next to the other logs, not into the caller's folder.
        f"-XX:ErrorFile={settings.broker_dir}/hs_err_pid%p.log",
        f"-Dlog4j2.configurationFile={settings.log4j_file}",
        "-cp",
        f"{libs}/*",
        "kafka.Kafka",
        str(settings.properties_file),
    ]


def recorded_ports(settings: BrokerSettings) -> tuple[int, int] | None:
    """Return the (client, controller) ports of the last written ``server.properties``."""
    try:
        text = settings.properties_file.read_text(encoding="utf-8")
    except OSError:
        return None
    match = _LISTENERS.search(text)
    return None if match is None else (int(match.group(1)), int(match.group(2)))


def format_storage_if_needed(
    settings: BrokerSettings, *, java: str, libs: Path, progress: Progress
) -> None:
    """Format the KRaft storage once; a formatted folder keeps its data.

    Args:
        settings: Settings with concrete ports and absolute paths.
        java: Path of the ``java`` executable.
        libs: Folder of the broker's jars.
        progress: Receives human-readable progress lines.

    Raises:
        BrokerStartError: If Kafka's StorageTool fails.
    """
    if (settings.data_dir / "meta.properties").is_file():
        return
    progress(f"Formatting broker storage in {settings.data_dir}…")
    command = [
        java,
        "-Xmx256m",
        f"-Dlog4j2.configurationFile={settings.log4j_file}",
        "-cp",
        f"{libs}/*",
        "kafka.tools.StorageTool",
        "format",
        "--cluster-id",
        _new_cluster_id(),
        "--config",
        str(settings.properties_file),
        # Tolerates a concurrent or interrupted format that already wrote meta.properties.
        "--ignore-formatted",
        *(settings.secure.scram_arguments() if settings.secure else ()),
    ]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=_FORMAT_TIMEOUT_S,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise BrokerStartError(
            f"Formatting the broker storage in {settings.data_dir} took over "
            f"{_FORMAT_TIMEOUT_S:.0f} s."
        ) from None
    if done.returncode != 0:
        output = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
        raise BrokerStartError(
            f"Kafka could not format its storage in {settings.data_dir} "
            f"(exit code {done.returncode}):\n{output}"
        )


def _new_cluster_id() -> str:
    """Return a cluster id in Kafka's format, saving a JVM start for ``random-uuid``.

    Kafka prints a UUID as unpadded URL-safe base64 and rejects ids that start
    with ``-`` (they read as command-line options).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id
