"""Dead letters stay small: the reason is capped, and the fallback drops the value."""

from __future__ import annotations

from orchestrator.runtime.records import (
    MAX_REASON_CHARS,
    OutgoingRecord,
    cap_reason,
    dead_letter_record,
    dead_letter_without_value,
)

ORIGINAL_HEADERS = [("ce_id", b"ce-9"), ("ce_type", b"orchestrator.request.v1")]


def dead_letter(*, value: bytes | None, reason: str, key: bytes | None = b"r-1") -> OutgoingRecord:
    return dead_letter_record(
        topic="orch.dlq",
        key=key,
        value=value,
        headers=list(ORIGINAL_HEADERS),
        code="request.invalid",
        reason=reason,
        origin_topic="orch.requests",
        origin_partition=1,
        origin_offset=42,
    )


def test_a_short_reason_is_kept_whole() -> None:
    reason = "x" * MAX_REASON_CHARS

    assert cap_reason(reason) == reason


def test_a_reason_quoting_a_600_kb_input_is_cut_with_a_marker() -> None:
    big_input = b'{"items": [' + b'"abcdefghij",' * 50_000 + b'"end"]}'
    reason = f"input does not match the schema: {big_input.decode()} is not valid"

    record = dead_letter(value=big_input, reason=reason)

    headers = dict(record.headers)
    stored = headers["dlq_reason"].decode()
    assert len(stored) == MAX_REASON_CHARS
    assert stored.startswith("input does not match the schema: {")
    assert stored.endswith(f"... [cut: the reason had {len(reason)} characters]")
    assert record.value == big_input, "the original value is kept"
    assert sum(len(value) for _, value in record.headers) < 2 * MAX_REASON_CHARS


def test_a_multibyte_reason_is_capped_by_characters() -> None:
    stored = cap_reason("é" * 10_000)

    assert len(stored) == MAX_REASON_CHARS
    assert len(stored.encode()) < 2 * MAX_REASON_CHARS


def test_the_fallback_keeps_key_and_dlq_headers_and_drops_the_value() -> None:
    full = dead_letter(value=b"v" * 600_000, reason="too big to keep")

    small = dead_letter_without_value(full)

    assert (small.topic, small.key, small.value) == ("orch.dlq", b"r-1", b"")
    assert small.headers == [
        ("dlq_code", b"request.invalid"),
        ("dlq_reason", b"too big to keep"),
        ("dlq_topic", b"orch.requests"),
        ("dlq_partition", b"1"),
        ("dlq_offset", b"42"),
        (
            "dlq_dropped",
            b"the original value of 600000 bytes was too large to keep"
            b" (its 2 other headers were dropped too)",
        ),
    ]


def test_the_fallback_of_a_keyless_record_is_still_sendable() -> None:
    small = dead_letter_without_value(dead_letter(value=b"v" * 10, reason="r", key=None))

    assert small.key is None
    assert small.value == b"", "aiokafka refuses a record with neither key nor value"


def test_the_fallback_drops_the_originals_own_dlq_headers_and_cuts_a_long_key() -> None:
    from orchestrator.runtime.records import DLQ_HEADERS, MAX_FALLBACK_KEY_BYTES, dead_letter_record

    full = dead_letter_record(
        topic="dlq",
        key=b"k" * 5_000,
        value=b"v",
        headers=[("dlq_padding", b"p" * 900_000), ("dlq_code", b"forged")],
        code="reply.invalid",
        reason="bad",
        origin_topic="replies",
        origin_partition=0,
        origin_offset=9,
    )
    small = dead_letter_without_value(full)

    names = [name for name, _ in small.headers]
    assert names == [*DLQ_HEADERS, "dlq_dropped"]
    assert dict(small.headers)["dlq_code"] == b"reply.invalid"
    assert small.key == b"k" * MAX_FALLBACK_KEY_BYTES
    assert sum(len(value) for _, value in small.headers) < 2_000
