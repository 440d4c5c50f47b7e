"""Find the external tools the local broker needs: ``java`` and ``mvn``."""

from __future__ import annotations

import re
import shutil
import subprocess

from orchestrator.errors import ToolMissingError

MIN_JAVA = 17
_DOCKER_HINT = "run Kafka with `docker compose up -d` from docker-compose.yml"
_JAVA_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?')


def require_java() -> str:
    """Return the path of a ``java`` 17+ on PATH.

    Returns:
        Absolute path of the ``java`` executable.

    Raises:
        ToolMissingError: If ``java`` is absent or older than Java 17.
    """
    java = shutil.which("java")
    if java is None:
        raise ToolMissingError(
            f"Java is not installed (no `java` on PATH): install a JDK {MIN_JAVA}+ "
            f"or {_DOCKER_HINT}."
        )
    major = _java_major(java)
    # An unreadable version is let through: the JVM itself will then explain.
    if major is not None and major < MIN_JAVA:
        raise ToolMissingError(
            f"Kafka needs Java {MIN_JAVA}+ but `{java}` is Java {major}: "
            f"install a JDK {MIN_JAVA}+ or {_DOCKER_HINT}."
        )
    return java


def require_maven() -> str:
    """Return the path of ``mvn`` on PATH.

    Returns:
        Absolute path of the ``mvn`` executable.

    Raises:
        ToolMissingError: If ``mvn`` is absent.
    """
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ToolMissingError(
            f"Maven is not installed (no `mvn` on PATH): install Maven 3.8+ or {_DOCKER_HINT}."
        )
    return mvn


def _java_major(java: str) -> int | None:
    """Return the major version printed by ``java -version``, if readable."""
    try:
        done = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _JAVA_VERSION.search(done.stderr + done.stdout)
    if match is None:
        return None
    major = int(match.group(1))
    # Java 8 and older report themselves as "1.8".
    if major == 1 and match.group(2) is not None:
        return int(match.group(2))
    return major
