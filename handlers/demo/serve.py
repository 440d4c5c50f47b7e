"""``python -m handlers.demo.serve [--base-port 8101]``: the demo HTTP services, standalone.

Prints one JSON line with the catalog's environment (``DEMO_*_URL``) once they
listen, then serves until SIGTERM or SIGINT. With ``--base-port 8101`` they take
the ports the demo catalog uses by default (8101-8106); without it, free ports.
The benchmark uses it to keep the services off the coordinator's core.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

import orjson

from handlers.demo.services import DemoHttpServices


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m handlers.demo.serve")
    parser.add_argument(
        "--base-port", type=int, default=0, help="first of six ports (0: free ports)"
    )
    arguments = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with DemoHttpServices(base_port=arguments.base_port) as services:
        sys.stdout.write(orjson.dumps(services.env).decode() + "\n")
        sys.stdout.flush()
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
