"""What an HTTP answer (or its absence) becomes: the adapter's outcomes and their messages.

Messages say the method and what failed (``POST answered 402 Payment Required``; the
saga puts the service and operation in front), never the URL, its query,
credentials, a redirect's ``Location`` or the downstream's reason phrase and body:
they reach results, dead letters and logs, which more people read than the catalog.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from http import HTTPStatus

import orjson

from handlers.outbound import AddressRefusedError
from handlers.outcome import CallOutcome

_RETRIABLE_STATUS = frozenset({408, 425, 429})
_RETRY_AFTER_STATUS = frozenset({429, 503})
MAX_RETRY_AFTER_MS = 600_000


def timed_out(label: str, timeout_s: float) -> CallOutcome:
    return CallOutcome.technical_error("http.timeout", f"{label} took longer than {timeout_s:g} s")


def refused(label: str, error: AddressRefusedError) -> CallOutcome:
    return CallOutcome.business_error(
        "http.address_refused",
        f"{label} not sent: the address is {error.kind}, which the service's catalog entry "
        f"does not allow (add allow: {{{error.kind}: true}} or allow.networks if intended)"
        if error.kind in ("loopback", "private", "link_local")
        else f"{label} not sent: the address is {error.kind}, which the service's catalog "
        "entry does not allow (list it in allow.networks if intended)",
    )


def unreachable(label: str, error: BaseException) -> CallOutcome:
    # The exception's text names the host, port and sometimes the URL: only its kind is kept.
    return CallOutcome.technical_error(
        "http.unreachable", f"{label} could not be reached ({type(error).__name__})"
    )


def response_outcome(
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    *,
    label: str,
) -> CallOutcome:
    """The outcome of a response; ``headers`` must look names up case-insensitively.

    The message names the status and its standard phrase only: the downstream's
    reason phrase, body and Location can carry internal details or secrets.
    """
    if 200 <= status < 300:
        if not content:
            return CallOutcome.ok(None)
        try:
            return CallOutcome.ok(orjson.loads(content))
        except orjson.JSONDecodeError:
            return CallOutcome.technical_error(
                "http.invalid_json", f"{label} answered {status} with a body that is not JSON"
            )
    if 300 <= status < 400:
        return CallOutcome.business_error(
            f"http.{status}",
            f"{label} answered {status} (a redirect); redirects are not followed: point the "
            "service's base_url or path at the final address",
        )
    message = f"{label} answered {status}{_phrase(status)}"
    if status >= 500 or status in _RETRIABLE_STATUS:
        retry_after = (
            retry_after_ms(headers.get("retry-after")) if status in _RETRY_AFTER_STATUS else None
        )
        return CallOutcome.technical_error(f"http.{status}", message, retry_after_ms=retry_after)
    return CallOutcome.business_error(f"http.{status}", message)


def retry_after_ms(value: str | None, *, now_s: float | None = None) -> int | None:
    """A ``Retry-After`` header (delta-seconds or an HTTP date) in ms from now, or None.

    Unparseable or past values give None; the wait is capped at ten minutes.
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        wait_ms = int(value) * 1000
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        wait_ms = int((when.timestamp() - (time.time() if now_s is None else now_s)) * 1000)
        if wait_ms < 0:
            return None
    return min(wait_ms, MAX_RETRY_AFTER_MS)


def _phrase(status: int) -> str:
    try:
        return f" {HTTPStatus(status).phrase}"
    except ValueError:
        return ""
