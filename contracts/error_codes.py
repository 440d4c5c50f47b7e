"""Every stable error code that reaches the wire, declared once.

A code appears in a result's ``errors[].code`` (or ``adapter_code``), in a step
reply's ``error.code``, or in a dead letter's ``dlq_code``. Users search for these,
so they never change meaning. The README's error-code table is checked against
this registry by a test, and so is every code literal in the source.

``retryable`` says whether the saga retries a call that failed with it (when the
step's ``retry.attempts`` allows); it is only meaningful for adapter codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Where = Literal["result", "adapter", "dead_letter"]


@dataclass(frozen=True, slots=True)
class ErrorCode:
    """One stable code."""

    code: str
    meaning: str
    where: Where
    retryable: bool = False


_CODES = (
    # Requests that never became a saga (dead-lettered, with a failed result).
    ErrorCode("request.missing_headers", "a required CloudEvents header is missing", "result"),
    ErrorCode("request.wrong_type", "`ce_type` is not `orchestrator.request.v1`", "result"),
    ErrorCode(
        "request.too_large",
        "the request record is over `ORCH_MAX_REQUEST_BYTES` (checked before parsing)",
        "result",
    ),
    ErrorCode("request.undecodable", "the payload is not a JSON object", "result"),
    ErrorCode("request.invalid", "the payload is not a valid request event", "result"),
    ErrorCode(
        "request.key_mismatch",
        "the record's key is missing or is not the payload's `request_id` (copies could land "
        "on two partitions and run twice)",
        "result",
    ),
    ErrorCode("flow.unknown", "no flow of that name is loaded", "result"),
    ErrorCode(
        "input.too_deep",
        "the input nests deeper than `ORCH_MAX_INPUT_DEPTH` (or 1,024 levels, JSON's limit)",
        "result",
    ),
    ErrorCode(
        "input.too_long",
        "an array in the input is longer than `ORCH_MAX_INPUT_ARRAY_LENGTH`",
        "result",
    ),
    ErrorCode(
        "input.invalid",
        "the input fails the flow's `input_schema` (or, from an adapter, the operation's "
        "input type)",
        "result",
    ),
    # A saga's steps.
    ErrorCode(
        "step.business_error",
        "a service said no (`adapter_code` has its code, e.g. `http.404`); not retried",
        "result",
    ),
    ErrorCode(
        "step.technical_error",
        "a call could not be performed, after its retries (`adapter_code`: `http.503`...)",
        "result",
    ),
    ErrorCode(
        "step.timeout", "no reply within the step's `timeout_ms`, after its retries", "result"
    ),
    ErrorCode(
        "step.deadline", "the flow's `deadline_ms` passed before the saga finished", "result"
    ),
    ErrorCode("step.condition_error", "a step's `when` expression failed", "result"),
    ErrorCode(
        "step.input_error",
        "a step's input could not be computed (e.g. `for_each` not a list)",
        "result",
    ),
    ErrorCode("step.output_error", "a step's `output` mapping failed on the reply", "result"),
    ErrorCode(
        "step.for_each_too_long",
        "a step's `for_each` gave more items than `ORCH_MAX_FOR_EACH`; no call was made",
        "result",
    ),
    ErrorCode(
        "step.mapping_budget",
        "an expression (`when`, `input`, `for_each`, `output` or `result`) needed more work "
        "than `ORCH_MAX_MAPPING_WORK` allows: its data is too large for it",
        "result",
    ),
    ErrorCode("result.mapping_error", "the `result` mapping failed", "result"),
    ErrorCode(
        "result.too_large",
        "the composed result is over `ORCH_MAX_RESULT_BYTES`; the saga failed (and compensated)",
        "result",
    ),
    ErrorCode(
        "compensation.failed",
        "a compensation failed for good; the step and call it could not undo are named",
        "result",
    ),
    ErrorCode(
        "compensation.input_error", "a compensation's `input` could not be computed", "result"
    ),
    ErrorCode(
        "flow.changed",
        "a saga restored after a restart started under a flow definition that no longer "
        "loads against the service catalog",
        "result",
    ),
    ErrorCode(
        "orchestrator.internal_error",
        "the coordinator itself failed on this record (a bug: report it)",
        "result",
    ),
    # Adapter outcomes (in `adapter_code`, or a reply's error code).
    ErrorCode(
        "http.<status>",
        "an HTTP answer: 408, 425, 429 and 5xx are retryable, other 4xx are not",
        "adapter",
        retryable=True,
    ),
    ErrorCode(
        "http.3xx", "a redirect (`http.301`, `http.302`...); redirects are not followed", "adapter"
    ),
    ErrorCode(
        "http.timeout",
        "the whole HTTP call took longer than the attempt's time",
        "adapter",
        retryable=True,
    ),
    ErrorCode("http.unreachable", "the connection failed", "adapter", retryable=True),
    ErrorCode(
        "http.address_refused",
        "the service's address is internal (loopback, private, link-local...) and its "
        "catalog entry's `allow` does not allow it; no connection was made",
        "adapter",
    ),
    ErrorCode(
        "http.invalid_json", "a 2xx answer whose body is not JSON", "adapter", retryable=True
    ),
    ErrorCode(
        "http.response_too_large",
        "the response body exceeded the service's `max_response_bytes`",
        "adapter",
    ),
    ErrorCode("operation.unknown", "the adapter has no such operation", "adapter"),
    ErrorCode(
        "adapter.exception", "the adapter's code raised an exception", "adapter", retryable=True
    ),
    ErrorCode(
        "adapter.timeout",
        "the adapter's operation ran past the call's deadline",
        "adapter",
        retryable=True,
    ),
    ErrorCode(
        "adapter.invalid_output",
        "the operation returned a value its return type cannot serialise",
        "adapter",
        retryable=True,
    ),
    ErrorCode(
        "adapter.output_unencodable",
        "the worker could not encode the operation's output as JSON (e.g. an int over 64 bits)",
        "adapter",
    ),
    ErrorCode(
        "circuit.open",
        "the service's circuit breaker is open (it kept failing); the call was not made",
        "adapter",
        retryable=True,
    ),
    ErrorCode(
        "rate_limit.exceeded",
        "the call would have waited longer than the service's `rate_limit.max_wait_ms` for "
        "its turn; not made",
        "adapter",
        retryable=True,
    ),
    ErrorCode(
        "command.expired",
        "a step command reached the worker after its deadline; not run",
        "adapter",
        retryable=True,
    ),
    ErrorCode(
        "reply.undeliverable",
        "the worker's reply could not be published (too large)",
        "adapter",
        retryable=True,
    ),
    # Dead letters only.
    ErrorCode(
        "reply.invalid", "a record on the reply topic is not a valid step reply", "dead_letter"
    ),
    ErrorCode(
        "reply.unauthenticated",
        "a reply to a running saga without the `reply_token` of a command it sent (forged, or "
        "from an adapter that does not echo it); the saga never sees it",
        "dead_letter",
    ),
    ErrorCode(
        "command.invalid", "a record on a command topic is not a valid step command", "dead_letter"
    ),
    ErrorCode(
        "command.reply_topic_refused",
        "a step command names a reply topic (or partition) the worker may not write to "
        "(`--reply-topic`)",
        "dead_letter",
    ),
    ErrorCode(
        "command.missing_headers", "a step command lacks its reply-to headers", "dead_letter"
    ),
)

ERROR_CODES: dict[str, ErrorCode] = {entry.code: entry for entry in _CODES}
"""Every stable code, by code."""
