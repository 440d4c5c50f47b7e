"""CloudEvents 1.0 Kafka binary-mode headers, and the orchestrator's extensions.

Binary mode keeps the payload a plain JSON document and puts the event attributes
in Kafka headers named ``ce_<attribute>``. The orchestrator adds four extension
attributes (CloudEvents extension names are lowercase alphanumerics):

=====================  =========================================================
``ce_correlationid``   ``<request id>:<call>:<attempt>``, pairs a reply with its command
``ce_replytopic``      topic the reply must be published to
``ce_replypartition``  partition the reply must be published to (the saga owner's)
``ce_idempotencykey``  ``<request id>:<call>``, the same for every attempt of a call
=====================  =========================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

SPEC_VERSION = "1.0"
CONTENT_TYPE_JSON = "application/json"

ID = "ce_id"
TYPE = "ce_type"
SOURCE = "ce_source"
SPECVERSION = "ce_specversion"
TIME = "ce_time"
CONTENT_TYPE = "content-type"
CORRELATION_ID = "ce_correlationid"
REPLY_TOPIC = "ce_replytopic"
REPLY_PARTITION = "ce_replypartition"
IDEMPOTENCY_KEY = "ce_idempotencykey"

REQUIRED = (ID, TYPE, SOURCE, SPECVERSION, CONTENT_TYPE)
"""Headers without which a record is not a CloudEvent we can process."""

TYPE_REQUEST = "orchestrator.request.v1"
TYPE_STEP_COMMAND = "orchestrator.step.command.v1"
TYPE_STEP_REPLY = "orchestrator.step.reply.v1"
TYPE_RESULT = "orchestrator.result.v1"

KafkaHeaders = list[tuple[str, bytes]]


def rfc3339(epoch_ms: int) -> str:
    """Format epoch milliseconds as an RFC 3339 UTC timestamp for ``ce_time``."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_headers(
    *,
    event_id: str,
    event_type: str,
    source: str,
    time_ms: int,
    extensions: Iterable[tuple[str, str]] = (),
) -> KafkaHeaders:
    """Return the Kafka headers of one binary-mode CloudEvent with a JSON payload."""
    headers = [
        (ID, event_id.encode()),
        (TYPE, event_type.encode()),
        (SOURCE, source.encode()),
        (SPECVERSION, SPEC_VERSION.encode()),
        (TIME, rfc3339(time_ms).encode()),
        (CONTENT_TYPE, CONTENT_TYPE_JSON.encode()),
    ]
    headers.extend((name, value.encode()) for name, value in extensions)
    return headers


def headers_to_dict(headers: Sequence[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """Decode Kafka headers to a dict; undecodable or empty values become ''.

    The last value wins when a header repeats, as in most Kafka clients.
    """
    decoded: dict[str, str] = {}
    for name, value in headers or ():
        try:
            decoded[name] = value.decode() if value else ""
        except UnicodeDecodeError:
            decoded[name] = ""
    return decoded


def missing_headers(headers: dict[str, str]) -> list[str]:
    """Return the required CloudEvents headers that are absent or empty."""
    return [name for name in REQUIRED if not headers.get(name)]
