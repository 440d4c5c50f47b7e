"""CloudEvents 1.0 Kafka binary-mode headers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from contracts import cloudevents


def _headers(**overrides: str) -> dict[str, str]:
    raw = cloudevents.build_headers(
        event_id="e-1",
        event_type=cloudevents.TYPE_REQUEST,
        source="urn:test",
        time_ms=1_700_000_000_123,
        extensions=((cloudevents.CORRELATION_ID, "r:s:1"),),
    )
    return {**cloudevents.headers_to_dict(raw), **overrides}


def test_build_headers_has_every_required_header_as_bytes() -> None:
    raw = cloudevents.build_headers(
        event_id="e-1", event_type=cloudevents.TYPE_RESULT, source="urn:s", time_ms=0
    )
    names = [name for name, _ in raw]

    assert set(cloudevents.REQUIRED) <= set(names)
    assert len(names) == len(set(names))
    assert all(isinstance(value, bytes) for _, value in raw)
    decoded = dict(raw)
    assert decoded[cloudevents.ID] == b"e-1"
    assert decoded[cloudevents.TYPE] == b"orchestrator.result.v1"
    assert decoded[cloudevents.SOURCE] == b"urn:s"
    assert decoded[cloudevents.SPECVERSION] == b"1.0"
    assert decoded[cloudevents.CONTENT_TYPE] == b"application/json"
    assert cloudevents.missing_headers(cloudevents.headers_to_dict(raw)) == []


def test_build_headers_appends_extensions() -> None:
    headers = _headers()

    assert headers[cloudevents.CORRELATION_ID] == "r:s:1"


@pytest.mark.parametrize(
    ("epoch_ms", "expected"),
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (1_700_000_000_123, "2023-11-14T22:13:20.123Z"),
        (1_700_000_000_007, "2023-11-14T22:13:20.007Z"),
    ],
)
def test_time_is_rfc3339_utc_with_milliseconds(epoch_ms: int, expected: str) -> None:
    assert cloudevents.rfc3339(epoch_ms) == expected
    parsed = datetime.fromisoformat(expected)
    assert parsed.tzinfo == UTC
    assert int(parsed.timestamp() * 1000) == epoch_ms


def test_ce_time_header_round_trips_to_the_given_instant() -> None:
    moment = datetime.fromisoformat(_headers()[cloudevents.TIME])

    assert moment == datetime(2023, 11, 14, 22, 13, 20, 123_000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("drop", "blank", "missing"),
    [
        ((), (), []),
        ((cloudevents.ID,), (), ["ce_id"]),
        ((), (cloudevents.TYPE,), ["ce_type"]),
        ((cloudevents.SOURCE, cloudevents.CONTENT_TYPE), (), ["ce_source", "content-type"]),
        ((cloudevents.SPECVERSION,), (cloudevents.ID,), ["ce_id", "ce_specversion"]),
        ((cloudevents.TIME, cloudevents.CORRELATION_ID), (), []),  # not required
    ],
)
def test_missing_headers_lists_absent_or_empty_required_headers(
    drop: tuple[str, ...], blank: tuple[str, ...], missing: list[str]
) -> None:
    headers = {name: value for name, value in _headers().items() if name not in drop}
    headers.update(dict.fromkeys(blank, ""))

    assert cloudevents.missing_headers(headers) == missing


def test_missing_headers_of_nothing_is_every_required_header() -> None:
    assert cloudevents.missing_headers({}) == list(cloudevents.REQUIRED)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, {}),
        ([], {}),
        ([("a", b"1"), ("b", b"two")], {"a": "1", "b": "two"}),
        ([("a", None)], {"a": ""}),
        ([("a", b"")], {"a": ""}),
        ([("a", b"\xff\xfe")], {"a": ""}),
        ([("a", "é".encode())], {"a": "é"}),
        ([("a", b"first"), ("a", b"last")], {"a": "last"}),
    ],
)
def test_headers_to_dict(
    raw: list[tuple[str, bytes | None]] | None, expected: dict[str, str]
) -> None:
    assert cloudevents.headers_to_dict(raw) == expected
