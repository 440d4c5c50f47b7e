"""Answer one step command: run the operation, build the reply (no Kafka here).

The reply goes to the topic and partition the command names
(``ce_replytopic``/``ce_replypartition``), but only to a topic the worker is allowed
to write replies to (``reply_topics``: names or ``fnmatch`` patterns): a forged
command must not make the worker write onto a result or request topic. It carries
the command's correlation id and echoes its ``reply_token`` (the coordinator's
proof that the reply answers a command it sent).
"""

from __future__ import annotations

import asyncio
import fnmatch
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from contracts import cloudevents
from contracts.base import SCHEMA_VERSION
from contracts.events import StepCommand
from handlers.context import CallContext
from handlers.outcome import CallOutcome
from handlers.sdk import Service

OUTPUT_UNENCODABLE = "adapter.output_unencodable"


@dataclass(frozen=True, slots=True)
class Reply:
    """A reply to publish."""

    topic: str
    partition: int
    key: bytes
    value: bytes
    headers: dict[str, str]
    request_id: str
    correlation_id: str
    reply_token: str | None = None

    def as_technical_error(self, code: str, message: str) -> Reply:
        """The same reply, reporting a technical error instead of its output."""
        payload = _payload(
            request_id=self.request_id,
            correlation_id=self.correlation_id,
            reply_token=self.reply_token,
            outcome=CallOutcome.technical_error(code, message),
        )
        return Reply(
            topic=self.topic,
            partition=self.partition,
            key=self.key,
            value=orjson.dumps(payload),
            headers=self.headers,
            request_id=self.request_id,
            correlation_id=self.correlation_id,
            reply_token=self.reply_token,
        )


@dataclass(frozen=True, slots=True)
class Unanswerable:
    """A command that cannot be answered; it goes to the dead-letter topic."""

    code: str
    reason: str


def reply_topic_allowed(topic: str, allowed: Sequence[str]) -> bool:
    """Whether ``topic`` is one of ``allowed`` (names, or ``fnmatch`` patterns such as
    ``orders.*.replies``)."""
    return any(fnmatch.fnmatchcase(topic, pattern) for pattern in allowed)


async def answer_command(
    service: Service,
    *,
    value: bytes,
    headers: dict[str, str],
    source: str,
    now_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    reply_topics: Sequence[str] | None = None,
) -> Reply | Unanswerable:
    """Run the command in ``value`` and build its reply.

    The operation gets the command's :class:`CallContext` (request id, call,
    attempt, idempotency key, deadline, flow, step); an outcome's
    ``retry_after_ms`` is passed on in the reply.

    A command past its ``deadline_ms`` is not run (the coordinator has already
    timed the call out): it is answered ``command.expired``. A running operation is
    cut off at the deadline (``adapter.timeout``), so a hung call frees the worker.
    An output that cannot be encoded as JSON (an int over 64 bits) is answered
    ``adapter.output_unencodable``, never dropped.

    ``reply_topics``: the topics the reply may go to (names or patterns); a command
    naming another is unanswerable (``command.reply_topic_refused``), and is not
    run. None allows any topic (for tests of a single command).
    """
    reply_topic = headers.get(cloudevents.REPLY_TOPIC)
    reply_partition = headers.get(cloudevents.REPLY_PARTITION, "")
    if not reply_topic or not reply_partition.isdigit():
        return Unanswerable(
            "command.missing_headers",
            f"a step command needs {cloudevents.REPLY_TOPIC} "
            f"and {cloudevents.REPLY_PARTITION} headers",
        )
    if reply_topics is not None and not reply_topic_allowed(reply_topic, reply_topics):
        return Unanswerable(
            "command.reply_topic_refused",
            f"the command names reply topic {reply_topic[:200]!r}, which is not one this "
            f"worker replies to ({', '.join(reply_topics)}); it was not run",
        )
    try:
        command = StepCommand.model_validate(orjson.loads(value))
    except (orjson.JSONDecodeError, ValidationError) as error:
        return Unanswerable(
            "command.invalid", f"not a valid step command: {str(error).splitlines()[0]}"
        )
    remaining_ms = command.deadline_ms - now_ms()
    if remaining_ms <= 0:
        outcome = CallOutcome.technical_error(
            "command.expired",
            f"the command arrived {-remaining_ms} ms after its deadline; it was not run",
        )
    else:
        try:
            outcome = await asyncio.wait_for(
                service.invoke(command.operation, command.input, _context_of(command)),
                remaining_ms / 1000,
            )
        except TimeoutError:
            outcome = CallOutcome.technical_error(
                "adapter.timeout", f"{service.name}.{command.operation} ran past the deadline"
            )
    payload = _payload(
        request_id=command.request_id,
        correlation_id=command.correlation_id,
        reply_token=command.reply_token,
        outcome=outcome,
    )
    try:
        encoded = orjson.dumps(payload)
    except (TypeError, ValueError) as error:  # orjson.JSONEncodeError is a TypeError
        encoded = orjson.dumps(
            _payload(
                request_id=command.request_id,
                correlation_id=command.correlation_id,
                reply_token=command.reply_token,
                outcome=CallOutcome.technical_error(
                    OUTPUT_UNENCODABLE,
                    f"{service.name}.{command.operation}: its output cannot be encoded as "
                    f"JSON: {error}",
                ),
            )
        )
    reply_headers = {
        name: raw.decode()
        for name, raw in cloudevents.build_headers(
            event_id=f"{command.correlation_id}:reply",
            event_type=cloudevents.TYPE_STEP_REPLY,
            source=source,
            time_ms=now_ms(),
            extensions=((cloudevents.CORRELATION_ID, command.correlation_id),),
        )
    }
    return Reply(
        topic=reply_topic,
        partition=int(reply_partition),
        key=command.request_id.encode(),
        value=encoded,
        headers=reply_headers,
        request_id=command.request_id,
        correlation_id=command.correlation_id,
        reply_token=command.reply_token,
    )


def _payload(
    *, request_id: str, correlation_id: str, reply_token: str | None, outcome: CallOutcome
) -> dict[str, Any]:
    """A :class:`contracts.StepReply` as a dict (optional fields only when set: a
    coordinator without them rejects unknown fields)."""
    payload: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "request_id": request_id,
        "correlation_id": correlation_id,
        "status": outcome.status,
        "output": outcome.output,
        "error": None
        if outcome.status == "ok"
        else {"code": outcome.error_code, "message": outcome.error_message},
    }
    if outcome.retry_after_ms is not None:
        payload["retry_after_ms"] = outcome.retry_after_ms
    if reply_token is not None:
        payload["reply_token"] = reply_token
    return payload


def _context_of(command: StepCommand) -> CallContext:
    return CallContext(
        request_id=command.request_id,
        call=command.call,
        attempt=command.attempt,
        idempotency_key=command.idempotency_key,
        deadline_ms=command.deadline_ms,
        flow=command.flow,
        step=command.step,
    )
