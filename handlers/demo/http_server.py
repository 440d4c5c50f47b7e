"""A small real JSON-over-HTTP server on loopback, for the demo services and tests.

Built on the standard library's threading HTTP server: each request runs on its
own thread, so a slow or hanging route does not stop the others.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

RouteResult = tuple[int, Any] | tuple[int, Any, dict[str, str]]
"""``(status, JSON payload)``, or ``(status, payload, extra headers)``."""
Route = Callable[["HttpCall"], RouteResult]


class HttpCall:
    """One request as a route sees it."""

    def __init__(
        self,
        *,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: Any,
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body

    @property
    def segments(self) -> list[str]:
        """The path split on '/', without empty parts."""
        return [part for part in self.path.split("/") if part]


class _Server(ThreadingHTTPServer):
    # The standard library listens with a backlog of 5: a hundred connections
    # opened at once would see most of theirs dropped and retried a second later.
    request_queue_size = 1024


class JsonHttpServer:
    """Serve ``route`` on 127.0.0.1 (port 0 picks a free one) until :meth:`stop`."""

    def __init__(self, route: Route, *, port: int = 0, name: str = "http") -> None:
        self.route = route
        self.name = name
        self.calls: list[HttpCall] = []
        self._server = _Server(("127.0.0.1", port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"{name}-server", daemon=True
        )

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:40123``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> JsonHttpServer:
        """Start serving in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> JsonHttpServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def _handler_for(server: JsonHttpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body leave in two writes; with Nagle's algorithm on, the
        # body waits for the client's delayed ACK (~40 ms per call on Linux).
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            call = HttpCall(
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query),
                headers={key.lower(): value for key, value in self.headers.items()},
                body=orjson.loads(raw) if raw else None,
            )
            server.calls.append(call)
            extra: dict[str, str] = {}
            try:
                answer = server.route(call)
                status, payload = answer[0], answer[1]
                if len(answer) == 3:
                    extra = answer[2]
            except Exception as error:
                status, payload = HTTPStatus.INTERNAL_SERVER_ERROR, {"error": str(error)}
            body = orjson.dumps(payload)
            try:
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (e.g. it timed out); nothing to answer

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep the demo's and tests' output readable

    return Handler
