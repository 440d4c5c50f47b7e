"""Settings of the local Apache Kafka broker: versions, folders, ports and heap.

Every path the broker manager touches derives from one :class:`BrokerSettings`,
so a test can point a whole broker at a temporary folder with one override.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.errors import SetupError

if TYPE_CHECKING:
    from .secure import SecureListeners

#: Pinned so every developer and CI run talks to the same broker behaviour.
KAFKA_VERSION = "4.3.1"
SCALA_VERSION = "2.13"
#: Routes the broker's slf4j logging to log4j2, which reads our log4j2.yaml.
LOG4J_VERSION = "2.25.4"

HOST = "127.0.0.1"
DEFAULT_PORT = 9092
HOME_ENV = "ORCH_HOME"
PORT_ENV = "ORCH_BROKER_PORT"
#: The variables of the local broker (``orchestrator broker``), which runs beside the
#: orchestrator rather than in it: name, default as shown, meaning. ``orchestrator
#: config`` and the README's configuration table list them after the settings.
VARIABLES = (
    (PORT_ENV, str(DEFAULT_PORT), "Port of the local broker (``orchestrator broker up``)."),
    (HOME_ENV, "~/.cache/kafka-orchestrator", "Where the Kafka jars and local broker data live."),
)


def default_cache_dir() -> Path:
    """Return ``$ORCH_HOME`` if set, else ``~/.cache/kafka-orchestrator``."""
    home = os.environ.get(HOME_ENV)
    if home:
        return Path(home).expanduser()
    return Path.home() / ".cache" / "kafka-orchestrator"


def default_port() -> int:
    """Return ``$ORCH_BROKER_PORT`` if set, else 9092.

    Raises:
        SetupError: If the variable is not a port number.
    """
    raw = os.environ.get(PORT_ENV, "").strip()
    if not raw:
        return DEFAULT_PORT
    if not raw.isdigit() or int(raw) > 65535:
        raise SetupError(f"{PORT_ENV}={raw!r} is not a port number (0-65535, 0 picks a free one).")
    return int(raw)


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """Where and how one local single-node KRaft broker runs.

    Attributes:
        kafka_version: Apache Kafka release fetched from Maven Central.
        scala_version: Scala build of the ``kafka_<scala>`` artifact.
        cache_dir: Holds the fetched jars and, by default, the runtime folder.
        runtime_dir: Folder of this broker (data, configs, logs, pid file);
            ``None`` means ``<cache_dir>/broker-<port>``.
        port: Client (PLAINTEXT) port on 127.0.0.1; 0 picks a free one.
        controller_port: KRaft controller port; ``None`` means ``port + 1``
            (or a free port when ``port`` is 0).
        heap_min: JVM ``-Xms`` value.
        heap_max: JVM ``-Xmx`` value.
        ready_timeout: Seconds to wait for the broker to answer a client.
        stop_timeout: Seconds to wait after SIGTERM before SIGKILL.
        secure: Extra SASL_SSL (and mTLS) listeners with SCRAM users and ACLs
            enforced; None: the PLAINTEXT listener only, no authorizer.
    """

    kafka_version: str = KAFKA_VERSION
    scala_version: str = SCALA_VERSION
    cache_dir: Path = field(default_factory=default_cache_dir)
    runtime_dir: Path | None = None
    port: int = field(default_factory=default_port)
    controller_port: int | None = None
    heap_min: str = "256m"
    heap_max: str = "1g"
    ready_timeout: float = 60.0
    stop_timeout: float = 30.0
    secure: SecureListeners | None = None

    @property
    def resolved_controller_port(self) -> int:
        """Controller port, defaulting to ``port + 1`` (0 while ``port`` is 0)."""
        if self.controller_port is not None:
            return self.controller_port
        return 0 if self.port == 0 else self.port + 1

    @property
    def has_concrete_ports(self) -> bool:
        """Whether both ports are known, that is neither asks for a free port."""
        return self.port != 0 and self.resolved_controller_port != 0

    def with_ports(self, port: int, controller_port: int) -> BrokerSettings:
        """Return a copy with both ports set (used once free ports are picked)."""
        return replace(self, port=port, controller_port=controller_port)

    def absolute(self) -> BrokerSettings:
        """Return a copy with absolute folders, as the pid check compares paths."""
        runtime = None if self.runtime_dir is None else self.runtime_dir.expanduser().absolute()
        return replace(self, cache_dir=self.cache_dir.expanduser().absolute(), runtime_dir=runtime)

    @property
    def dist_dir(self) -> Path:
        """Cache folder of this Kafka release: pom.xml, libs/ and the marker."""
        return self.cache_dir / f"kafka_{self.scala_version}-{self.kafka_version}"

    @property
    def libs_dir(self) -> Path:
        """Folder of the broker's jars (the JVM classpath)."""
        return self.dist_dir / "libs"

    @property
    def fetched_marker(self) -> Path:
        """File written only after a complete fetch; absent means fetch again."""
        return self.dist_dir / ".fetch-complete"

    @property
    def broker_dir(self) -> Path:
        """Runtime folder of this broker."""
        if self.runtime_dir is not None:
            return self.runtime_dir
        return self.cache_dir / f"broker-{self.port}"

    @property
    def data_dir(self) -> Path:
        """KRaft metadata and topic data (``log.dirs``)."""
        return self.broker_dir / "data"

    @property
    def properties_file(self) -> Path:
        """The broker's ``server.properties``."""
        return self.broker_dir / "server.properties"

    @property
    def log4j_file(self) -> Path:
        """The broker's log4j2 configuration."""
        return self.broker_dir / "log4j2.yaml"

    @property
    def server_log(self) -> Path:
        """The broker's own log, written by log4j2."""
        return self.broker_dir / "server.log"

    @property
    def stdout_log(self) -> Path:
        """The JVM's stdout and stderr (crashes before logging starts land here)."""
        return self.broker_dir / "stdout.log"

    @property
    def pid_file(self) -> Path:
        """Pid of the running broker process."""
        return self.broker_dir / "broker.pid"

    @property
    def bootstrap(self) -> str:
        """Bootstrap address clients use."""
        return f"{HOST}:{self.port}"
