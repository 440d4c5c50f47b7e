"""Contract models: frozen, strict about unknown fields, and their own invariants."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from contracts import (
    FlowDefinition,
    RequestEvent,
    ResultEvent,
    ServiceCatalog,
    StepCommand,
    StepReply,
    StepSummary,
    command_topic_of,
)
from contracts.catalog import KafkaService

COMMAND = {
    "request_id": "r-1",
    "flow": "f",
    "step": "s",
    "call": "s",
    "attempt": 1,
    "service": "svc",
    "operation": "op",
    "input": {"a": 1},
    "deadline_ms": 1000,
    "correlation_id": "r-1:s:1",
    "idempotency_key": "r-1:s",
}

VALID: list[tuple[type[BaseModel], dict[str, Any]]] = [
    (RequestEvent, {"request_id": "r-1", "flow": "f"}),
    (StepCommand, COMMAND),
    (StepReply, {"request_id": "r-1", "correlation_id": "c", "status": "ok", "output": 1}),
    (
        ResultEvent,
        {
            "request_id": "r-1",
            "flow": "f",
            "status": "completed",
            "started_at_ms": 1,
            "finished_at_ms": 2,
        },
    ),
    (
        FlowDefinition,
        {"name": "f", "steps": {"a": {"service": "s", "operation": "o"}}, "result": "a"},
    ),
    (ServiceCatalog, {"services": {"k": {"kind": "kafka"}}}),
]
IDS = [model.__name__ for model, _ in VALID]


@pytest.mark.parametrize(("model", "data"), VALID, ids=IDS)
def test_models_are_frozen(model: type[BaseModel], data: dict[str, Any]) -> None:
    instance = model.model_validate(data)
    field = next(iter(data))

    with pytest.raises(ValidationError, match="frozen"):
        setattr(instance, field, data[field])


@pytest.mark.parametrize(("model", "data"), VALID, ids=IDS)
def test_models_reject_unknown_fields(model: type[BaseModel], data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted") as caught:
        model.model_validate({**data, "surprise": True})

    assert caught.value.errors()[0]["loc"] == ("surprise",)


@pytest.mark.parametrize(("model", "data"), VALID, ids=IDS)
def test_models_pin_their_schema_version(model: type[BaseModel], data: dict[str, Any]) -> None:
    # Results are at version 3 (additive over 2 and 1, which still parse); the rest at 1.
    current = 3 if model is ResultEvent else 1
    assert model.model_validate(data).model_dump()["schema_version"] == current
    with pytest.raises(ValidationError, match="schema_version"):
        model.model_validate({**data, "schema_version": current + 1})


def test_a_version_1_result_still_parses() -> None:
    old = {
        "schema_version": 1,
        "request_id": "r-1",
        "flow": "f",
        "status": "failed",
        "started_at_ms": 1,
        "finished_at_ms": 2,
        "steps": [{"step": "a", "status": "not_run", "calls": 0, "failed_calls": 0}],
    }

    result = ResultEvent.model_validate(old)

    assert (result.complete, result.flow_version, result.steps[0].attempts) == (True, None, 0)


def test_a_version_2_result_still_parses_without_times() -> None:
    old = {
        "schema_version": 2,
        "request_id": "r-1",
        "flow": "f",
        "status": "completed",
        "started_at_ms": 1,
        "finished_at_ms": 2,
        "steps": [{"step": "a", "status": "ok", "calls": 1, "failed_calls": 0, "attempts": 1}],
    }

    [step] = ResultEvent.model_validate(old).steps

    assert (step.started_ms, step.finished_ms, step.call_timeline) == (None, None, [])


def test_a_step_holds_at_most_its_cap_of_timed_calls() -> None:
    timed = {"call": "a", "started_ms": 0, "finished_ms": 1, "attempts": 1, "outcome": "ok"}
    step = {"step": "a", "status": "ok", "calls": 30, "failed_calls": 0}

    with pytest.raises(ValidationError, match="at most 20"):
        StepSummary.model_validate({**step, "call_timeline": [timed] * 21})
    assert (
        len(StepSummary.model_validate({**step, "call_timeline": [timed] * 20}).call_timeline) == 20
    )


@pytest.mark.parametrize(
    ("status", "error", "valid"),
    [
        ("ok", None, True),
        ("ok", {"code": "x"}, False),
        ("business_error", {"code": "http.404", "message": "gone"}, True),
        ("business_error", None, False),
        ("technical_error", {"code": "http.500"}, True),
        ("technical_error", None, False),
    ],
)
def test_step_reply_carries_an_error_iff_it_failed(
    status: str, error: dict[str, str] | None, valid: bool
) -> None:
    data = {"request_id": "r", "correlation_id": "c", "status": status, "error": error}
    if valid:
        assert StepReply.model_validate(data).status == status
    else:
        with pytest.raises(ValidationError, match="error"):
            StepReply.model_validate(data)


@pytest.mark.parametrize(
    ("model", "data", "field"),
    [
        (RequestEvent, {"request_id": "", "flow": "f"}, "request_id"),
        (RequestEvent, {"request_id": "r" * 257, "flow": "f"}, "request_id"),
        (RequestEvent, {"request_id": "r", "flow": ""}, "flow"),
        (RequestEvent, {"request_id": "r", "flow": "f", "input": [1]}, "input"),
        (StepCommand, {**COMMAND, "attempt": 0}, "attempt"),
        (StepReply, {"request_id": "r", "correlation_id": "c", "status": "maybe"}, "status"),
        (
            StepReply,
            {
                "request_id": "r",
                "correlation_id": "c",
                "status": "business_error",
                "error": {"code": ""},
            },
            "error",
        ),
        (
            FlowDefinition,
            {"name": "Bad Name", "steps": {"a": {"service": "s", "operation": "o"}}, "result": "a"},
            "name",
        ),
        (FlowDefinition, {"name": "f", "steps": {}, "result": "a"}, "steps"),
        (
            ServiceCatalog,
            {
                "services": {
                    "h": {"kind": "http", "base_url": "ftp://x", "operations": {"o": {"path": "/"}}}
                }
            },
            "services",
        ),
        (
            ServiceCatalog,
            {
                "services": {
                    "h": {
                        "kind": "http",
                        "base_url": "http://x",
                        "operations": {"o": {"path": "no-slash"}},
                    }
                }
            },
            "services",
        ),
        (
            ServiceCatalog,
            {"services": {"p": {"kind": "python", "adapter": "no_colon"}}},
            "services",
        ),
        (ServiceCatalog, {"services": {"x": {"kind": "grpc"}}}, "services"),
    ],
)
def test_field_constraints(model: type[BaseModel], data: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)

    assert caught.value.errors()[0]["loc"][0] == field


@pytest.mark.parametrize(
    ("service", "topic"),
    [
        (KafkaService(kind="kafka"), "inventory.commands"),
        (KafkaService(kind="kafka", command_topic="stock.in"), "stock.in"),
    ],
)
def test_command_topic_default(service: KafkaService, topic: str) -> None:
    assert command_topic_of("inventory", service) == topic
