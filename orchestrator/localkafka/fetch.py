"""Fetch the pinned Apache Kafka jars from Maven Central into the local cache."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from orchestrator.errors import BrokerFetchError

from .config import LOG4J_VERSION, BrokerSettings
from .locking import file_lock
from .progress import Progress, tail, to_stderr
from .tools import require_java, require_maven

#: Pinned so the copy step behaves the same whatever Maven version is installed.
_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
_MAVEN_TIMEOUT_S = 900.0

_POM = """\
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.kafka-orchestrator</groupId>
  <artifactId>kafka-broker-libs</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{scala}</artifactId>
      <version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""


def ensure_kafka_jars(
    settings: BrokerSettings | None = None, *, progress: Progress = to_stderr
) -> Path:
    """Make sure the broker's jars are cached, fetching them once with Maven.

    A marker file is written only after a complete fetch, so an interrupted
    fetch is redone from scratch on the next call. Once the marker exists this
    function neither needs nor runs ``mvn``.

    Args:
        settings: Broker settings; defaults to ``BrokerSettings()``.
        progress: Receives human-readable progress lines.

    Returns:
        The folder holding the jars (use ``<folder>/*`` as the classpath).

    Raises:
        ToolMissingError: If a fetch is needed and ``java`` or ``mvn`` is missing.
        BrokerFetchError: If Maven fails or produces no Kafka jar.
    """
    settings = settings or BrokerSettings()
    if settings.fetched_marker.is_file():
        return settings.libs_dir
    dist = settings.dist_dir
    with file_lock(dist.parent / f"{dist.name}.lock"):
        # Another process may have finished the fetch while we waited.
        if settings.fetched_marker.is_file():
            return settings.libs_dir
        require_java()
        mvn = require_maven()
        progress(f"Fetching Apache Kafka {settings.kafka_version} with Maven (first run only)…")
        _run_maven(settings, mvn)
        jars = sorted(settings.libs_dir.glob("*.jar"))
        size_mb = sum(jar.stat().st_size for jar in jars) / 1e6
        settings.fetched_marker.write_text(f"{len(jars)} jars\n", encoding="utf-8")
        progress(f"Fetched {len(jars)} jars ({size_mb:.0f} MB) into {settings.libs_dir}.")
    return settings.libs_dir


def _run_maven(settings: BrokerSettings, mvn: str) -> None:
    """Copy the runtime dependency closure of the pinned Kafka into ``libs/``."""
    dist = settings.dist_dir
    # Leftovers of an interrupted fetch (or another version) must not end up
    # on the classpath.
    shutil.rmtree(settings.libs_dir, ignore_errors=True)
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "pom.xml").write_text(
        _POM.format(
            scala=settings.scala_version, kafka=settings.kafka_version, log4j=LOG4J_VERSION
        ),
        encoding="utf-8",
    )
    maven_log = dist / "maven.log"
    command = [
        mvn,
        "-q",
        "-B",
        "-Dstyle.color=never",
        f"{_DEPENDENCY_PLUGIN}:copy-dependencies",
        f"-DoutputDirectory={settings.libs_dir}",
        "-DincludeScope=runtime",
    ]
    with maven_log.open("w", encoding="utf-8") as log:
        try:
            done = subprocess.run(
                command,
                cwd=dist,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=_MAVEN_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise BrokerFetchError(
                f"Maven did not finish fetching Apache Kafka {settings.kafka_version} "
                f"within {_MAVEN_TIMEOUT_S:.0f} s; last lines of {maven_log}:\n"
                f"{tail(maven_log)}"
            ) from None
    kafka_jar = settings.libs_dir / f"kafka_{settings.scala_version}-{settings.kafka_version}.jar"
    if done.returncode != 0 or not kafka_jar.is_file():
        raise BrokerFetchError(
            f"Maven could not fetch Apache Kafka {settings.kafka_version} "
            f"(exit code {done.returncode}); last lines of {maven_log}:\n{tail(maven_log)}"
        )
