"""``python -m handlers.demo.serve``: run the demo HTTP services in their own process.

Prints one JSON line with the catalog's environment (``DEMO_*_URL``) once they
listen, then serves until SIGTERM or SIGINT. The benchmark uses it to keep the
services off the coordinator's core.
"""

from __future__ import annotations

import signal
import sys
import threading

import orjson

from handlers.demo.services import DemoHttpServices


def main() -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with DemoHttpServices() as services:
        sys.stdout.write(orjson.dumps(services.env).decode() + "\n")
        sys.stdout.flush()
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
