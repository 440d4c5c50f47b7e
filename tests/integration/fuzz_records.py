"""Hypothesis strategies for hostile Kafka records, and a fast way to draw many.

Drawing 10,000 records one ``@given`` example at a time would run a Kafka test
10,000 times; instead :func:`draw_many` runs a pure ``@given`` function (no I/O)
whose every example is a batch of records, and collects them. The settings are
fixed (``derandomize=True``, no example database) so CI draws the same records.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from contracts import cloudevents

T = TypeVar("T")

REPRODUCIBLE = settings(
    database=None,
    derandomize=True,
    deadline=None,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)

DEEP = 10_000
Headers = list[tuple[str, bytes]]
Record = tuple[bytes | None, bytes | None, Headers]
"""(key, value, headers) as published."""


def draw_many(strategy: st.SearchStrategy[T], *, count: int, batch: int = 100) -> list[T]:
    """``count`` values of ``strategy``, drawn ``batch`` per hypothesis example."""
    drawn: list[T] = []

    @settings(REPRODUCIBLE, max_examples=count // batch + 1)
    @given(st.lists(strategy, min_size=batch, max_size=batch))
    def collect(values: list[T]) -> None:
        drawn.extend(values)

    collect()
    assert len(drawn) >= count, f"hypothesis drew {len(drawn)} records, {count} wanted"
    return drawn[:count]


def not_good(text: str) -> bool:
    """Hostile keys and ids never name a good request (they would answer it first)."""
    return "good-" not in text


texts = st.text(max_size=30).filter(not_good)
invalid_utf8 = st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80\x80", b"\xf8\x88"])
huge_texts = st.integers(min_value=10_000, max_value=30_000).map(lambda n: "h" * n)
json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        texts,
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(texts, children, max_size=4)
    ),
    max_leaves=10,
)


def deep_json(depth: int, inner: bytes = b"1") -> bytes:
    return b"[" * depth + inner + b"]" * depth


def _without(headers: Headers, keep: list[bool]) -> Headers:
    return [header for header, kept in zip(headers, keep, strict=True) if kept]


def _replaced(headers: Headers, index: int, value: bytes) -> Headers:
    return [(name, value if n == index else old) for n, (name, old) in enumerate(headers)]


def hostile_headers(valid: Headers) -> st.SearchStrategy[Headers]:
    """``valid`` headers, or some of them, or wrong ones, or junk."""
    indexes = st.integers(min_value=0, max_value=len(valid) - 1)
    return st.one_of(
        st.just(valid),
        st.just(valid),
        st.just([]),
        st.lists(st.booleans(), min_size=len(valid), max_size=len(valid)).map(
            lambda keep: _without(valid, keep)
        ),
        st.tuples(indexes, st.binary(max_size=20)).map(lambda c: _replaced(valid, *c)),
        st.tuples(indexes, invalid_utf8).map(
            lambda c: _replaced(valid, c[0], valid[c[0]][1] + c[1])
        ),
        st.lists(st.tuples(st.text(max_size=12), st.binary(max_size=20)), max_size=5),
    )


REQUEST_HEADERS = cloudevents.build_headers(
    event_id="fuzz", event_type=cloudevents.TYPE_REQUEST, source="urn:fuzz", time_ms=0
)


def refusing_headers(valid: Headers, *, event_type: str) -> st.SearchStrategy[Headers]:
    """Headers the record is refused for: a required one absent or undecodable,
    or a ``ce_type`` other than ``event_type``."""
    required = st.sampled_from(cloudevents.REQUIRED)
    wrong_type = st.binary(max_size=30).filter(lambda v: v != event_type.encode())
    return st.one_of(
        st.just([]),
        st.sets(required, min_size=1).map(lambda drop: [h for h in valid if h[0] not in drop]),
        wrong_type.map(lambda v: [(n, v if n == cloudevents.TYPE else old) for n, old in valid]),
        st.tuples(required, invalid_utf8).map(
            lambda c: [(n, old + c[1] if n == c[0] else old) for n, old in valid]
        ),
        st.lists(st.tuples(st.text(max_size=12), st.binary(max_size=20)), max_size=5),
    )


request_headers = hostile_headers(REQUEST_HEADERS)
ids = st.text(min_size=1, max_size=20).filter(not_good)
non_strings = json_values.filter(lambda v: not isinstance(v, str))
keys = st.one_of(st.none(), st.binary(max_size=20).filter(lambda k: b"good-" not in k))
FIELDS = ("schema_version", "request_id", "flow", "input")


def _envelope(request_id: str, flow_name: str, **changes: Any) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "request_id": request_id,
        "flow": flow_name,
        "input": {"id": "x"},
        **changes,
    }


def _values(flow: str) -> st.SearchStrategy[bytes | None]:
    """Record values that are not a valid request of ``flow``."""

    def dumps(**changes: Any) -> st.SearchStrategy[bytes]:
        return st.fixed_dictionaries({"request_id": ids, **changes}).map(
            lambda c: orjson.dumps(_envelope(c.pop("request_id"), flow, **c))
        )

    def deep_input(depth: int, request_id: str) -> bytes:
        head = orjson.dumps(_envelope(request_id, flow, input={"id": "x", "deep": 0}))
        return head.replace(b'"deep":0', b'"deep":' + deep_json(depth))

    def broken(text: bytes, cut: int, junk: bytes) -> bytes:
        cut = cut % (len(text) + 1)
        return text[:cut] + junk + text[cut:]

    return st.one_of(
        st.none(),
        st.binary(max_size=100),
        json_values.map(orjson.dumps),
        # wrong types, missing fields
        st.sampled_from(FIELDS).flatmap(lambda f: dumps(**{f: non_strings})),
        dumps(schema_version=st.integers(min_value=2, max_value=2**63 - 1)),
        st.sampled_from(["request_id", "flow"]).flatmap(
            lambda f: ids.map(
                lambda i: orjson.dumps({k: v for k, v in _envelope(i, flow).items() if k != f})
            )
        ),
        # an input the flow refuses, an unknown flow
        dumps(input=st.fixed_dictionaries({"id": non_strings}, optional={"x": json_values})),
        dumps(flow=st.text(min_size=1, max_size=20).filter(lambda f: f != flow)),
        # huge strings, deep nesting, invalid UTF-8
        st.sampled_from(["request_id", "flow"]).flatmap(lambda f: dumps(**{f: huge_texts})),
        dumps(input=huge_texts.map(lambda h: {"id": h})),
        st.sampled_from([1_000, 1_100, DEEP]).map(deep_json),
        st.tuples(st.sampled_from([100, 500, 1_020, DEEP]), ids).map(lambda c: deep_input(*c)),
        st.tuples(dumps(), st.integers(min_value=0), invalid_utf8).map(lambda c: broken(*c)),
    )


def hostile_requests(flow: str) -> st.SearchStrategy[Record]:
    """Request records that must be refused: their value, key or headers are wrong.

    (A valid value gets wrong headers: every record is refused somewhere.)"""
    bad_values = st.tuples(st.one_of(keys, ids.map(str.encode)), _values(flow), request_headers)
    valid = ids.map(lambda i: (i.encode(), orjson.dumps(_envelope(i, flow))))
    refused = refusing_headers(REQUEST_HEADERS, event_type=cloudevents.TYPE_REQUEST)
    bad_headers = st.tuples(valid, refused).map(lambda c: (c[0][0], c[0][1], c[1]))
    # Kafka needs a key or a value: a record with neither gets an empty value.
    return st.one_of(bad_values, bad_values, bad_values, bad_headers).map(
        lambda r: r if r[0] is not None or r[1] is not None else (None, b"", r[2])
    )


REPLY_HEADERS = cloudevents.build_headers(
    event_id="fuzz:reply", event_type=cloudevents.TYPE_STEP_REPLY, source="urn:fuzz", time_ms=0
)


def forged_reply(correlation_id: str, request_id: str, *, status: str = "ok") -> bytes:
    return orjson.dumps(
        {
            "schema_version": 1,
            "request_id": request_id,
            "correlation_id": correlation_id,
            "status": status,
            "output": {"id": "forged"},
            "error": None if status == "ok" else {"code": "forged", "message": "forged"},
        }
    )


@st.composite
def hostile_replies(draw: st.DrawFn, old_ids: list[str]) -> tuple[Record, bool]:
    """A reply record nobody asked for, and whether it is well-formed (a forged
    reply the coordinator can parse: it must be ignored or dead-lettered, never
    taken) or malformed (it must be dead-lettered)."""
    kind = draw(st.sampled_from(["bytes", "tree", "deep", "bad-utf8", "unknown", "old", "foreign"]))
    headers = draw(hostile_headers(REPLY_HEADERS))
    if kind == "bytes":
        return (None, draw(st.binary(max_size=100)), headers), False
    if kind == "tree":
        return (None, orjson.dumps(draw(json_values)), headers), False
    if kind == "deep":
        return (None, deep_json(DEEP), headers), False
    if kind == "bad-utf8":
        text = forged_reply("x:a:1", "x")
        cut = draw(st.integers(min_value=0, max_value=len(text)))
        return (None, text[:cut] + draw(invalid_utf8) + text[cut:], headers), False
    status = draw(st.sampled_from(["ok", "business_error", "technical_error"]))
    if kind == "old":
        request_id = draw(st.sampled_from(old_ids))
        call = "a"
    elif kind == "unknown":
        request_id = draw(st.text(min_size=1, max_size=20).filter(not_good))
        call = draw(st.text(alphabet="abcxyz#0123456789", min_size=1, max_size=8))
    else:  # another coordinator's request ids and calls
        request_id = "foreign-" + draw(st.text(min_size=1, max_size=12))
        call = draw(st.sampled_from(["a", "b", "a#0", "zz"]))
    attempt = draw(st.integers(min_value=1, max_value=5))
    value = forged_reply(f"{request_id}:{call}:{attempt}", request_id, status=status)
    return (request_id.encode(), value, headers), True


FAR_DEADLINE_MS = 4_102_444_800_000
"""2100-01-01: commands drawn now are still live when the worker gets them."""


def command_headers(reply_topic: str, partition: str = "0") -> Headers:
    return cloudevents.build_headers(
        event_id="fuzz:command",
        event_type=cloudevents.TYPE_STEP_COMMAND,
        source="urn:fuzz",
        time_ms=0,
        extensions=(
            (cloudevents.REPLY_TOPIC, reply_topic),
            (cloudevents.REPLY_PARTITION, partition),
        ),
    )


def command(request_id: str, operation: str, command_input: Any) -> dict[str, Any]:
    """A step command as the coordinator sends it."""
    return {
        "schema_version": 1,
        "request_id": request_id,
        "flow": "fuzz",
        "step": "stock",
        "call": "stock",
        "attempt": 1,
        "service": "inventory",
        "operation": operation,
        "input": command_input,
        "deadline_ms": FAR_DEADLINE_MS,
        "correlation_id": f"{request_id}:stock:1",
        "idempotency_key": f"{request_id}:stock",
    }


def hostile_commands(reply_topic: str, foreign_topic: str) -> st.SearchStrategy[Record]:
    """Step commands the worker must dead-letter or answer with an error, never
    choke on: bad values, bad inputs, and headers naming no, a foreign, or a
    missing reply partition."""
    operations = st.sampled_from(["stock_levels", "reserve", "nope", ""])

    def dumps(request_id: str, operation: str, command_input: Any, **changes: Any) -> bytes:
        return orjson.dumps({**command(request_id, operation, command_input), **changes})

    def broken(text: bytes, cut: int, junk: bytes) -> bytes:
        cut = cut % (len(text) + 1)
        return text[:cut] + junk + text[cut:]

    fields = st.sampled_from(sorted(command("x", "stock_levels", {})))
    valid = st.tuples(ids, operations, json_values).map(lambda c: dumps(*c))
    values = st.one_of(
        st.binary(max_size=100),
        json_values.map(orjson.dumps),
        st.tuples(ids, fields, non_strings).map(
            lambda c: orjson.dumps({**command(c[0], "stock_levels", {}), c[1]: c[2]})
        ),
        st.tuples(ids, fields).map(
            lambda c: orjson.dumps(
                {k: v for k, v in command(c[0], "stock_levels", {}).items() if k != c[1]}
            )
        ),
        st.tuples(ids, huge_texts).map(
            lambda c: dumps(c[0], "stock_levels", {"product_ids": [c[1]]})
        ),
        st.tuples(ids, huge_texts).map(lambda c: dumps(c[0], c[1], {})),
        st.sampled_from([1_000, DEEP]).map(deep_json),
        st.tuples(ids, st.sampled_from([30, 1_020, DEEP])).map(
            lambda c: dumps(c[0], "stock_levels", {"product_ids": "DEEP"}).replace(
                b'"DEEP"', deep_json(c[1], b'"p"')
            )
        ),
        st.tuples(valid, st.integers(min_value=0), invalid_utf8).map(lambda c: broken(*c)),
        valid,
        st.tuples(ids, st.integers(min_value=-(2**63), max_value=0)).map(
            lambda c: dumps(c[0], "stock_levels", {"product_ids": []}, deadline_ms=c[1])
        ),
    )
    good_headers = command_headers(reply_topic)
    headers = st.one_of(
        st.just(good_headers),
        st.just(good_headers),
        st.just(good_headers),
        st.just(command_headers(foreign_topic)),
        st.sampled_from(["99", "-1", "", "x", "0x1", "١"]).map(
            lambda p: command_headers(reply_topic, p)
        ),
        st.sets(
            st.sampled_from([cloudevents.REPLY_TOPIC, cloudevents.REPLY_PARTITION]), min_size=1
        ).map(lambda drop: [h for h in good_headers if h[0] not in drop]),
        st.tuples(
            st.sampled_from([cloudevents.REPLY_TOPIC, cloudevents.REPLY_PARTITION]), invalid_utf8
        ).map(lambda c: [(n, v + c[1] if n == c[0] else v) for n, v in good_headers]),
        st.lists(st.tuples(st.text(max_size=12), st.binary(max_size=20)), max_size=5),
    )
    return st.tuples(st.one_of(st.none(), ids.map(str.encode)), values, headers)
