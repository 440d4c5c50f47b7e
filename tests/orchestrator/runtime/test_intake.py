"""admit(): which request records may start a saga, and the code of every rejection."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from contracts import cloudevents
from orchestrator.builder import FlowBuilder
from orchestrator.catalog import catalog_from_data
from orchestrator.flow import compile_flow
from orchestrator.flow_files import FlowRegistry
from orchestrator.limits import Limits
from orchestrator.runtime.intake import AdmittedRequest, RejectedRequest, admit


def registry() -> FlowRegistry:
    catalog = catalog_from_data(
        {"services": {"orders": {"kind": "kafka"}}}, source="s.yaml", environ={}
    )
    builder = FlowBuilder(
        "order-details",
        input_schema={
            "type": "object",
            "required": ["order_id"],
            "properties": {
                "order_id": {"type": "string", "minLength": 1},
                "lines": {"type": "array", "items": {"type": "integer"}},
            },
            "additionalProperties": False,
        },
    )
    builder.step("order", service="orders", operation="get", input={"id": "input.order_id"})
    flow = compile_flow(builder.result("order").build(), catalog=catalog)
    return FlowRegistry(flows={flow.name: flow}, catalog=catalog)


REGISTRY = registry()


def headers(*drop: str, **overrides: str) -> dict[str, str]:
    base = cloudevents.headers_to_dict(
        cloudevents.build_headers(
            event_id="ce-1", event_type=cloudevents.TYPE_REQUEST, source="urn:c", time_ms=0
        )
    )
    base.update(overrides)
    for name in drop:
        del base[name]
    return base


def payload(**overrides: Any) -> bytes:
    body = {"request_id": "r-1", "flow": "order-details", "input": {"order_id": "o-1"}}
    body.update(overrides)
    return orjson.dumps(body)


def run_admit(
    value: bytes | None = None, key: bytes | None = b"r-1", hdrs: dict[str, str] | None = None
) -> AdmittedRequest | RejectedRequest:
    return admit(
        value=payload() if value is None else value,
        key=key,
        headers=headers() if hdrs is None else hdrs,
        registry=REGISTRY,
    )


def test_valid_request_is_admitted() -> None:
    admitted = run_admit()

    assert isinstance(admitted, AdmittedRequest)
    assert admitted.request_id == "r-1"
    assert admitted.flow is REGISTRY.flows["order-details"]
    assert admitted.input == {"order_id": "o-1"}


@pytest.mark.parametrize(
    ("value", "hdrs", "code", "fragment"),
    [
        (None, headers("ce_id"), "request.missing_headers", "ce_id"),
        (
            None,
            headers("ce_specversion", ce_source=""),
            "request.missing_headers",
            "ce_source, ce_specversion",
        ),
        (None, {}, "request.missing_headers", "ce_id, ce_type, ce_source"),
        (
            None,
            headers(ce_type="orchestrator.result.v1"),
            "request.wrong_type",
            "expected 'orchestrator.request.v1'",
        ),
        (b"not json", None, "request.undecodable", "not a JSON object"),
        (b"[1, 2]", None, "request.undecodable", "not a JSON object"),
        (b"", None, "request.undecodable", "not a JSON object"),
        (payload(request_id=""), None, "request.invalid", "request_id:"),
        (payload(flow=7), None, "request.invalid", "flow:"),
        (payload(extra=True), None, "request.invalid", "extra: Extra inputs"),
        (payload(input=[1]), None, "request.invalid", "input:"),
        (
            payload(flow="order-history"),
            None,
            "flow.unknown",
            "no flow named 'order-history' (loaded flows: order-details)",
        ),
        (payload(input={}), None, "input.invalid", "input: 'order_id' is a required property"),
        (payload(input={"order_id": ""}), None, "input.invalid", "order_id: "),
        (
            payload(input={"order_id": "o", "x": 1}),
            None,
            "input.invalid",
            "Additional properties are not allowed",
        ),
        (
            payload(input={"order_id": "o", "lines": [1, "two"]}),
            None,
            "input.invalid",
            "lines/1: 'two' is not of type 'integer'",
        ),
    ],
)
def test_rejections(
    value: bytes | None, hdrs: dict[str, str] | None, code: str, fragment: str
) -> None:
    rejected = run_admit(value, hdrs=hdrs)

    assert isinstance(rejected, RejectedRequest)
    assert rejected.code == code
    assert fragment in rejected.message


def test_header_checks_come_before_payload_checks() -> None:
    rejected = run_admit(b"not json", hdrs=headers(ce_type="other"))

    assert isinstance(rejected, RejectedRequest)
    assert rejected.code == "request.wrong_type"


@pytest.mark.parametrize(
    ("value", "key", "hdrs", "request_id", "flow"),
    [
        (payload(input={}), None, None, "r-1", "order-details"),
        (payload(request_id=""), b"k-1", None, "k-1", "order-details"),
        (payload(request_id=5, flow=["x"]), b"k-1", None, "k-1", None),
        (b"garbage", b"k-1", None, "k-1", None),
        (b"garbage", None, None, "ce-1", None),
        (b"garbage", b"\xff\xfe", None, "ce-1", None),
        (b"garbage", b"", headers(ce_id=""), None, None),
        (payload(flow="nope"), None, headers(ce_type="x"), "r-1", "nope"),
    ],
)
def test_request_id_and_flow_are_recovered_for_the_rejection(
    value: bytes,
    key: bytes | None,
    hdrs: dict[str, str] | None,
    request_id: str | None,
    flow: str | None,
) -> None:
    result = run_admit(value, key=key, hdrs=hdrs)

    assert isinstance(result, RejectedRequest)
    assert (result.request_id, result.flow) == (request_id, flow)


@pytest.mark.parametrize(
    ("key", "says"),
    [(None, "the record has no key"), (b"r-2", "the record has the key 'r-2'")],
)
def test_a_request_not_keyed_by_its_id_is_refused(key: bytes | None, says: str) -> None:
    # Copies keyed differently could land on two partitions, and two owners
    # would each run the request once.
    rejected = run_admit(payload(), key=key)

    assert isinstance(rejected, RejectedRequest)
    assert (rejected.code, rejected.request_id) == ("request.key_mismatch", "r-1")
    assert rejected.message.startswith(says)
    assert "keyed by its request_id 'r-1'" in rejected.message


def test_value_none_is_undecodable() -> None:
    rejected = admit(value=None, key=b"k-9", headers=headers(), registry=REGISTRY)

    assert isinstance(rejected, RejectedRequest)
    assert (rejected.code, rejected.request_id, rejected.flow) == (
        "request.undecodable",
        "k-9",
        None,
    )


def rejection(value: bytes, **limits: int) -> RejectedRequest:
    rejected = admit(
        value=value, key=b"r-1", headers=headers(), registry=REGISTRY, limits=Limits(**limits)
    )
    assert isinstance(rejected, RejectedRequest)
    return rejected


def test_a_record_over_the_size_limit_is_refused_unparsed() -> None:
    rejected = rejection(b"{" * 2_000, max_request_bytes=1_000)  # not even JSON

    assert rejected.code == "request.too_large"
    assert rejected.request_id == "r-1"  # from the key


def test_a_payload_nested_10000_levels_is_too_deep_not_a_crash() -> None:
    value = b'{"request_id":"r-1","flow":"order-details","input":' + b"[" * 10_000
    value += b"]" * 10_000 + b"}"

    assert rejection(value).code == "input.too_deep"


def test_an_input_deeper_than_the_limit_is_refused_before_validation() -> None:
    deep: Any = "o-1"
    for _ in range(200):
        deep = [deep]

    rejected = rejection(payload(input={"order_id": "o-1", "lines": deep}))

    assert rejected.code == "input.too_deep"
    assert "ORCH_MAX_INPUT_DEPTH" in rejected.message


def test_an_input_array_longer_than_the_limit_is_refused() -> None:
    value = payload(input={"order_id": "o-1", "lines": list(range(11))})

    assert rejection(value, max_input_array_length=10).code == "input.too_long"
    assert isinstance(
        admit(value=value, key=b"r-1", headers=headers(), registry=REGISTRY), AdmittedRequest
    )
