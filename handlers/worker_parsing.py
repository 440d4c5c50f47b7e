"""FastStream hooks that let every command record reach the worker's handler.

FastStream parses and decodes a record before the handler runs: it decodes each
header value as UTF-8 and the body as JSON (when ``content-type`` says so). A
record failing either (a header that is not UTF-8, an empty or broken body)
raised inside FastStream, so the command was neither answered nor dead-lettered,
and its offset was never handed to the pool. The handler parses the record itself
(undecodable headers become ``''``, see :func:`contracts.cloudevents.headers_to_dict`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any


async def raw_body(message: Any) -> Any:
    """Decoder: the raw body, parsed later by the handler."""
    return message.body


async def tolerant_parse(record: Any, parse: Callable[[Any], Awaitable[Any]]) -> Any:
    """Parser: FastStream's own, with header values that are not UTF-8 emptied."""
    try:
        return await parse(record)
    except (UnicodeDecodeError, AttributeError):
        headers = [(name, _utf8_or_empty(value)) for name, value in record.headers or ()]
        return await parse(dataclasses.replace(record, headers=headers))


def _utf8_or_empty(value: bytes | None) -> bytes:
    if value is None:
        return b""
    try:
        value.decode()
    except UnicodeDecodeError:
        return b""
    return value
