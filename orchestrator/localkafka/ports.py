"""Pick free TCP ports and tell whether a port is already taken on 127.0.0.1."""

from __future__ import annotations

import contextlib
import socket

from orchestrator.errors import BrokerStartError

from .config import HOST, PORT_ENV


def pick_free_ports(count: int) -> list[int]:
    """Return ``count`` distinct ports that are free on 127.0.0.1 right now.

    All sockets stay bound until every port is chosen, so the kernel cannot
    hand out the same port twice.

    Args:
        count: How many ports to pick.

    Returns:
        The port numbers.
    """
    with contextlib.ExitStack() as stack:
        ports: list[int] = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((HOST, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def port_in_use(port: int) -> bool:
    """Tell whether something already listens on ``127.0.0.1:port``.

    ``SO_REUSEADDR`` is set, like the JVM does, so sockets of a broker that
    just stopped (TIME_WAIT) do not count as a listener.

    Args:
        port: Port to check.

    Returns:
        True if binding the port fails.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return True
        return False


def require_free_ports(*ports: int) -> None:
    """Fail clearly if another program already listens on one of ``ports``.

    Args:
        *ports: Ports the broker is about to listen on.

    Raises:
        BrokerStartError: Naming the first taken port and how to get around it.
    """
    for port in ports:
        if port_in_use(port):
            raise BrokerStartError(
                f"Port {port} on {HOST} is already in use by another program: stop it, "
                f"set {PORT_ENV} to a free port, or, if it is a Kafka broker you want to "
                f"use, set KAFKA_BOOTSTRAP_SERVERS={HOST}:{port}."
            )
