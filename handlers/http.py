"""The built-in HTTP adapter: calls REST/JSON APIs through a pooled client.

Status codes map to outcomes the saga understands:

==========================  =====================  ================================
response                    outcome                code
==========================  =====================  ================================
2xx                         ok (JSON body)
3xx                         business_error         ``http.<status>`` (not followed)
408, 425, 429, 5xx          technical_error        ``http.<status>`` (retryable)
other 4xx                   business_error         ``http.<status>``
body over the size limit    business_error         ``http.response_too_large``
the whole call too slow     technical_error        ``http.timeout``
connection failure          technical_error        ``http.unreachable``
an address not allowed      business_error         ``http.address_refused``
2xx with a non-JSON body    technical_error        ``http.invalid_json``
==========================  =====================  ================================

``timeout_s`` bounds the whole call (connect, send, and the whole response), not
each phase, so a server trickling bytes cannot hold a call past it. The body is
streamed and cut off past the service's ``max_response_bytes``; a 429 or 503 with
a ``Retry-After`` header (seconds or an HTTP date) reports it as the outcome's
``retry_after_ms``, the lower bound of the saga's wait before retrying.

Every connection's resolved address is checked against the service's ``allow``
before it is opened (:mod:`handlers.outbound`). Error messages carry no URL,
query, credentials or downstream body (:mod:`handlers.http_outcomes`). The
``Idempotency-Key`` header is :func:`idempotency_header_value` of the call's key
(ASCII whatever the request id).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp
import httpx
import orjson
from yarl import URL

from contracts.catalog import HttpOperation, HttpService
from handlers.context import CallContext
from handlers.http_outcomes import (
    refused,
    response_outcome,
    timed_out,
    unreachable,
)
from handlers.outbound import AddressPolicy, AddressRefusedError, current_policy, refused_in
from handlers.outcome import CallOutcome
from handlers.templates import (
    JsonTemplate,
    MissingFieldError,
    TextTemplate,
    compile_json,
    compile_text,
)
from handlers.transport import EncodedUrlTransport

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

logger = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = "Idempotency-Key"
# Printable ASCII but "%" (so the encoding stays reversible) and space (header
# values are trimmed): an ASCII key without those is sent unchanged.
_HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")


def idempotency_header_value(key: str) -> str:
    """The key as an HTTP header value: percent-encoded UTF-8 where it is not ASCII.

    Deterministic, so every retry sends the same value; "%", space and control
    characters are encoded too, so two different keys never send the same value.
    """
    return quote(key, safe=_HEADER_SAFE)


def _traced_url(url: URL) -> str:
    """The URL a client span records: no credentials, no query (either may hold secrets)."""
    return str(url.with_user(None).with_query(None).with_fragment(None))


def _quote_segment(value: str) -> str:
    quoted = quote(value, safe="")
    # httpx (as RFC 3986 says) removes "." and ".." segments, which would send
    # the call to another route; percent-encoded dots are left alone.
    return quoted.replace(".", "%2E") if quoted.strip(".") == "" else quoted


def _no_dot_segments(path: str) -> str:
    # A dot segment can also come from a value next to fixed text ("/v.{x}"
    # with x = "."): encode whatever dot segment the rendered path has.
    segments = path.split("/")
    if not any(segment in (".", "..") for segment in segments):
        return path
    return "/".join(
        segment.replace(".", "%2E") if segment in (".", "..") else segment for segment in segments
    )


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


def build_http_client(
    *,
    max_connections: int = 100,
    max_keepalive: int = 20,
    tracer_provider: TracerProvider | None = None,
) -> httpx.AsyncClient:
    """The one shared client: pooled connections, no per-client timeout (calls set theirs).

    httpx's API over aiohttp's pool (:mod:`handlers.transport`); aiohttp keeps every
    connection it opened alive, up to ``max_connections`` (``max_keepalive`` applies
    to httpx's own pool only, kept for a custom client). With a ``tracer_provider``
    every request gets an HTTP client span and carries its ``traceparent``
    (OpenTelemetry's aiohttp instrumentation); without one, no hook is installed.
    """
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_keepalive)
    trace_configs = []
    if tracer_provider is not None:
        from opentelemetry.instrumentation.aiohttp_client import create_trace_config

        trace_configs.append(
            _never_failing(
                create_trace_config(tracer_provider=tracer_provider, url_filter=_traced_url)
            )
        )
    return httpx.AsyncClient(
        transport=EncodedUrlTransport(limits=limits, trace_configs=trace_configs),
        timeout=None,
        follow_redirects=False,
    )


_TRACE_SIGNALS = (
    "on_request_start",
    "on_request_chunk_sent",
    "on_response_chunk_received",
    "on_request_end",
    "on_request_exception",
    "on_request_redirect",
    "on_request_headers_sent",
)


def _never_failing(config: aiohttp.TraceConfig) -> aiohttp.TraceConfig:
    """The instrumentation's hooks, each made unable to fail the call it traces.

    aiohttp awaits trace hooks inside the request: a span processor or exporter
    that raises there would turn a good answer into ``adapter.exception``. A
    failing hook is logged (fully once) and the call goes on untraced.
    """
    for name in _TRACE_SIGNALS:
        signal = getattr(config, name, None)
        if signal is not None:
            signal[:] = [_guarded_hook(hook) for hook in signal]
    return config


_hook_failed = False


def _guarded_hook(hook: Any) -> Any:
    async def guarded(*args: Any, **kwargs: Any) -> None:
        global _hook_failed  # noqa: PLW0603 - log the traceback once per process
        try:
            await hook(*args, **kwargs)
        except Exception as error:
            logger.log(
                logging.DEBUG if _hook_failed else logging.WARNING,
                "an HTTP client span failed (%r); the call goes on untraced",
                error,
                exc_info=not _hook_failed,
            )
            _hook_failed = True

    return guarded


class HttpAdapter:
    """Calls the operations of one HTTP service.

    The service uses the shared ``client`` unless its catalog entry sets its own
    connection limits (``max_connections``, ``max_keepalive``): then it gets a pool
    of its own, so a slow service cannot take every connection from the others.
    With tracing on, each request's client span is a child of the span current
    when :meth:`call` runs (the coordinator's step span).
    """

    def __init__(
        self,
        name: str,
        service: HttpService,
        *,
        client: httpx.AsyncClient,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.name = name
        self._base_url = service.base_url.rstrip("/")
        self._headers = dict(service.headers)
        self._max_bytes = service.max_response_bytes
        allow = service.allow
        self._policy = AddressPolicy.of(
            loopback=allow.loopback,
            private=allow.private,
            link_local=allow.link_local,
            networks=allow.networks,
        )
        self.owns_client = service.max_connections is not None or service.max_keepalive is not None
        self.max_connections = service.max_connections
        """The service's own pool size, or None when it shares the default pool."""
        self._client = (
            build_http_client(
                max_connections=service.max_connections or 100,
                max_keepalive=min(service.max_keepalive or 20, service.max_connections or 100),
                tracer_provider=tracer_provider,
            )
            if self.owns_client
            else client
        )
        self._operations = {key: _compile_operation(op) for key, op in service.operations.items()}
        # The default client runs on aiohttp's pool (EncodedUrlTransport): calls go
        # to that pool directly. httpx's client layer (request building, auth,
        # redirects, cookies) cost as much CPU as aiohttp's own work per call, and
        # the adapter uses none of it. A custom httpx client keeps the httpx path.
        transport = getattr(self._client, "_transport", None)
        self._direct = transport if isinstance(transport, EncodedUrlTransport) else None

    async def aclose(self) -> None:
        """Close the service's own pool, if it has one (the shared client is not ours)."""
        if self.owns_client:
            await self._client.aclose()

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
        # Messages name the method and what happened; the saga prefixes the service
        # and operation ("payments.charge failed: POST answered 402 Payment Required").
        label = compiled.method
        try:
            url = self._base_url + _no_dot_segments(
                compiled.path.render(values, escape=_quote_segment)
            )
            params = {name: template.render(values) for name, template in compiled.query}
            headers = {
                **self._headers,
                IDEMPOTENCY_HEADER: idempotency_header_value(context.idempotency_key),
            }
            headers.update((name, template.render(values)) for name, template in compiled.headers)
            body = None if compiled.body is None else compiled.body.render(values)
        except MissingFieldError as error:
            return CallOutcome.business_error(
                "input.invalid", f"{self.name}.{operation} needs input field {error.args[0]!r}"
            )
        # The connector checks every connection against this service's policy.
        token = current_policy.set(self._policy)
        try:
            if self._direct is not None:
                return await self._call_aiohttp(
                    self._direct.session(),
                    compiled.method,
                    url,
                    label=label,
                    params=params,
                    headers=headers,
                    body=body,
                    timeout_s=timeout_s,
                )
            return await self._call_httpx(
                compiled.method,
                url,
                label=label,
                params=params,
                headers=headers,
                body=body,
                timeout_s=timeout_s,
            )
        finally:
            current_policy.reset(token)

    async def _call_httpx(
        self,
        method: str,
        url: str,
        *,
        label: str,
        params: dict[str, str],
        headers: dict[str, str],
        body: Any,
        timeout_s: float,
    ) -> CallOutcome:
        request = self._client.build_request(
            method,
            url,
            params=params or None,
            headers=headers,
            content=None if body is None else orjson.dumps(body),
        )
        try:
            # One deadline for the whole call: connect, send, headers and body.
            async with asyncio.timeout(timeout_s):
                # A custom httpx client's pool cannot be hooked: its host is resolved
                # and checked here, just before (the built-in pool checks at connect).
                await _check_resolved(request.url.host, request.url.port, self._policy)
                response = await self._client.send(request, stream=True)
                try:
                    content = await self._read_body(response)
                finally:
                    await response.aclose()
        except TimeoutError:
            return timed_out(label, timeout_s)
        except _TooLarge as error:
            return self._too_large(label, error)
        except AddressRefusedError as error:
            return refused(label, error)
        except (httpx.HTTPError, OSError) as error:
            return unreachable(label, error)
        return response_outcome(response.status_code, response.headers, content, label=label)

    async def _call_aiohttp(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: str,
        *,
        label: str,
        params: dict[str, str],
        headers: dict[str, str],
        body: Any,
        timeout_s: float,
    ) -> CallOutcome:
        if params:
            # Encoded here, as httpx would: every reserved character of a value
            # (& = # ? / %) is percent-encoded, so a value stays one value.
            url += "?" + "&".join(
                f"{quote(name, safe='')}={quote(value, safe='')}" for name, value in params.items()
            )
        try:
            async with asyncio.timeout(timeout_s):
                # encoded=True: aiohttp would otherwise re-quote and normalise the
                # path, turning an encoded dot segment back into a real one.
                async with session.request(
                    method,
                    URL(url, encoded=True),
                    headers=headers,
                    data=None if body is None else orjson.dumps(body),
                    allow_redirects=False,
                    compress=False,
                ) as response:
                    declared = response.content_length
                    if declared is not None and declared > self._max_bytes:
                        raise _TooLarge(f"Content-Length {declared}")
                    chunks: list[bytes] = []
                    size = 0
                    while chunk := await response.content.readany():
                        size += len(chunk)
                        if size > self._max_bytes:
                            raise _TooLarge("cut off while reading")
                        chunks.append(chunk)
                    content = b"".join(chunks)
        except TimeoutError:
            return timed_out(label, timeout_s)
        except _TooLarge as error:
            return self._too_large(label, error)
        except (aiohttp.ClientError, OSError) as error:
            refusal = refused_in(error)
            if refusal is not None:
                return refused(label, refusal)
            return unreachable(label, error)
        return response_outcome(response.status, response.headers, content, label=label)

    def _too_large(self, label: str, error: _TooLarge) -> CallOutcome:
        return CallOutcome.business_error(
            "http.response_too_large",
            f"{label} answered more than {self._max_bytes} bytes ({error}); raise the "
            "service's max_response_bytes if that is expected",
        )

    async def _read_body(self, response: httpx.Response) -> bytes:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_bytes:
            raise _TooLarge(f"Content-Length {declared}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_raw():
            size += len(chunk)
            if size > self._max_bytes:
                raise _TooLarge("cut off while reading")
            chunks.append(chunk)
        return b"".join(chunks)


class _TooLarge(Exception):
    """The response body is over the service's limit."""


async def _check_resolved(host: str, port: int | None, policy: AddressPolicy) -> None:
    """Refuse a host any of whose addresses the policy refuses (the httpx path)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host.strip("[]"), port or 80, type=socket.SOCK_STREAM
    )
    for info in infos:
        kind = policy.refusal(str(info[4][0]))
        if kind is not None:
            raise AddressRefusedError(kind)
