"""Read a request body within a size limit, then parse it as a flow input.

The limit is checked before anything is parsed: at once from ``Content-Length``
when the client sends one, and while the body streams in otherwise (a chunked
body stops being read at the first byte past the limit).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from orchestrator.ingress.errors import IngressRefusal


async def read_limited(request: Request, *, limit: int) -> bytes:
    """The whole body, or :class:`IngressRefusal` ``ingress.body_too_large``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_input(body: bytes) -> dict[str, Any]:
    """The flow input: a JSON object (an empty body is ``{}``)."""
    if not body.strip():
        return {}
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise IngressRefusal.of("ingress.invalid_json", f"The body is not JSON: {error}.") from None
    if not isinstance(value, dict):
        raise IngressRefusal(
            "input.invalid",
            f"The body must be a JSON object (the flow's input), got {type(value).__name__}.",
            status=422,
        )
    return value


def _too_large(limit: int) -> IngressRefusal:
    return IngressRefusal.of(
        "ingress.body_too_large",
        f"The body is larger than {limit} bytes (ORCH_INGRESS_MAX_BODY_BYTES).",
    )
