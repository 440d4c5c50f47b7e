"""The built-in HTTP adapter: calls REST/JSON APIs through one pooled client.

Status codes map to outcomes the saga understands:

==========================  =====================  ================================
response                    outcome                code
==========================  =====================  ================================
2xx                         ok (JSON body)
408, 425, 429, 5xx          technical_error        ``http.<status>``
other 4xx                   business_error         ``http.<status>``
timeout                     technical_error        ``http.timeout``
connection failure          technical_error        ``http.unreachable``
2xx with a non-JSON body    technical_error        ``http.invalid_json``
==========================  =====================  ================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from contracts.catalog import HttpOperation, HttpService
from handlers.context import CallContext
from handlers.outcome import CallOutcome
from handlers.templates import (
    JsonTemplate,
    MissingFieldError,
    TextTemplate,
    compile_json,
    compile_text,
)

_RETRIABLE_STATUS = frozenset({408, 425, 429})
IDEMPOTENCY_HEADER = "Idempotency-Key"


def _quote_segment(value: str) -> str:
    return quote(value, safe="")


@dataclass(frozen=True, slots=True)
class _CompiledOperation:
    method: str
    path: TextTemplate
    query: tuple[tuple[str, TextTemplate], ...]
    headers: tuple[tuple[str, TextTemplate], ...]
    body: JsonTemplate | None


def _compile_operation(operation: HttpOperation) -> _CompiledOperation:
    return _CompiledOperation(
        method=operation.method,
        path=compile_text(operation.path),
        query=tuple((name, compile_text(value)) for name, value in operation.query.items()),
        headers=tuple((name, compile_text(value)) for name, value in operation.headers.items()),
        body=None if operation.body is None else compile_json(operation.body),
    )


def build_http_client(*, max_connections: int = 100, max_keepalive: int = 20) -> httpx.AsyncClient:
    """The one shared client: pooled connections, no per-client timeout (calls set theirs)."""
    return httpx.AsyncClient(
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_keepalive
        ),
        timeout=None,
        follow_redirects=False,
    )


class HttpAdapter:
    """Calls the operations of one HTTP service with the shared client."""

    def __init__(self, name: str, service: HttpService, *, client: httpx.AsyncClient) -> None:
        self.name = name
        self._base_url = service.base_url.rstrip("/")
        self._headers = dict(service.headers)
        self._client = client
        self._operations = {key: _compile_operation(op) for key, op in service.operations.items()}

    async def call(
        self, operation: str, payload: Any, *, context: CallContext, timeout_s: float
    ) -> CallOutcome:
        """Perform one call; never raises, every failure is an outcome."""
        compiled = self._operations.get(operation)
        if compiled is None:
            return CallOutcome.business_error(
                "operation.unknown", f"HTTP service {self.name!r} has no operation {operation!r}"
            )
        values = payload if isinstance(payload, dict) else {}
        try:
            url = self._base_url + compiled.path.render(values, escape=_quote_segment)
            params = {name: template.render(values) for name, template in compiled.query}
            headers = {**self._headers, IDEMPOTENCY_HEADER: context.idempotency_key}
            headers.update((name, template.render(values)) for name, template in compiled.headers)
            body = None if compiled.body is None else compiled.body.render(values)
        except MissingFieldError as error:
            return CallOutcome.business_error(
                "input.invalid", f"{self.name}.{operation} needs input field {error.args[0]!r}"
            )
        try:
            response = await self._client.request(
                compiled.method,
                url,
                params=params or None,
                headers=headers,
                content=None if body is None else orjson.dumps(body),
                timeout=timeout_s,
            )
        except httpx.TimeoutException:
            return CallOutcome.technical_error(
                "http.timeout", f"{compiled.method} {url} took longer than {timeout_s:g} s"
            )
        except httpx.HTTPError as error:
            return CallOutcome.technical_error(
                "http.unreachable",
                f"{compiled.method} {url} failed: {type(error).__name__} {error}",
            )
        return _outcome(response, method=compiled.method, url=url)


def _outcome(response: httpx.Response, *, method: str, url: str) -> CallOutcome:
    status = response.status_code
    if 200 <= status < 300:
        if not response.content:
            return CallOutcome.ok(None)
        try:
            return CallOutcome.ok(orjson.loads(response.content))
        except orjson.JSONDecodeError:
            return CallOutcome.technical_error(
                "http.invalid_json",
                f"{method} {url} answered {status} with a body that is not JSON",
            )
    message = f"{method} {url} answered {status}: {_reason(response)}"
    if status >= 500 or status in _RETRIABLE_STATUS:
        return CallOutcome.technical_error(f"http.{status}", message)
    return CallOutcome.business_error(f"http.{status}", message)


def _reason(response: httpx.Response) -> str:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.reason_phrase or "no reason given"
    if isinstance(body, dict):
        for key in ("error", "message", "detail"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return response.reason_phrase or "no reason given"
