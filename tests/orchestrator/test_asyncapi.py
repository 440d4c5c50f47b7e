"""The AsyncAPI document: valid AsyncAPI 3.0.0, naming every topic, with schemas that
the records the orchestrator and the adapters really produce satisfy."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from referencing import Registry
from referencing.jsonschema import DRAFT7, DRAFT202012

from contracts import cloudevents
from handlers.demo.inventory import inventory
from handlers.sdk import Service
from handlers.worker import Reply, answer_command
from orchestrator.asyncapi import asyncapi_document
from orchestrator.commands.docs import render
from orchestrator.errors import SetupError
from orchestrator.flow_files import FlowRegistry, load_flows
from orchestrator.runtime.records import (
    command_record,
    dead_letter_record,
    dead_letter_without_value,
    result_record,
)
from orchestrator.saga.messages import DispatchCall
from orchestrator.settings import CoordinatorSettings

ROOT = Path(__file__).parents[2]
DEMO_FLOWS = ROOT / "handlers" / "demo" / "flows"
SPEC_URI = "urn:asyncapi:3.0.0"
DOC_URI = "urn:document"


def asyncapi_validator() -> jsonschema.protocols.Validator:
    """The official AsyncAPI 3.0.0 schema (vendored, see tests/fixtures/README.md)."""
    spec = orjson.loads((ROOT / "tests" / "fixtures" / "asyncapi-3.0.0.schema.json").read_bytes())
    registry: Registry[Any] = Registry().with_resource(SPEC_URI, DRAFT7.create_resource(spec))
    return jsonschema.Draft7Validator(
        {"$ref": SPEC_URI},
        registry=registry,
        format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER,
    )


SPEC = asyncapi_validator()


@pytest.fixture(scope="module")
def registry() -> FlowRegistry:
    return load_flows(DEMO_FLOWS)


@pytest.fixture(scope="module")
def document(registry: FlowRegistry) -> dict[str, Any]:
    return asyncapi_document(registry, settings=CoordinatorSettings(), adapters=[inventory])


def errors_of(document: dict[str, Any]) -> list[str]:
    # Through JSON, as a tool reading the printed document sees it.
    plain = orjson.loads(orjson.dumps(document))
    return [f"{list(error.absolute_path)}: {error.message}" for error in SPEC.iter_errors(plain)]


def validator_at(document: dict[str, Any], pointer: str) -> jsonschema.protocols.Validator:
    """A validator for the schema at ``pointer`` in the document, its refs resolved there."""
    registry: Registry[Any] = Registry().with_resource(
        DOC_URI, DRAFT202012.create_resource(document)
    )
    return jsonschema.Draft202012Validator({"$ref": f"{DOC_URI}#{pointer}"}, registry=registry)


def references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from references(value)
    elif isinstance(node, list):
        for item in node:
            yield from references(item)


def resolve(document: dict[str, Any], reference: str) -> Any:
    assert reference.startswith("#/"), reference
    node: Any = document
    for part in reference[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


# -- valid AsyncAPI -----------------------------------------------------------------


@pytest.mark.parametrize("with_adapter", [True, False], ids=["typed", "untyped"])
def test_the_demo_document_is_valid_asyncapi_3(registry: FlowRegistry, with_adapter: bool) -> None:
    document = asyncapi_document(
        registry,
        settings=CoordinatorSettings(),
        adapters=[inventory] if with_adapter else [],
    )

    assert document["asyncapi"] == "3.0.0"
    assert errors_of(document) == []


def test_the_validator_does_reject_what_asyncapi_3_does_not_allow(
    document: dict[str, Any],
) -> None:
    broken = orjson.loads(orjson.dumps(document))
    broken["operations"]["coordinator.sendResults"]["action"] = "publish"  # AsyncAPI 2 verb
    broken["channels"]["requests"]["subscribe"] = {}  # AsyncAPI 2 shape
    del broken["info"]["version"]

    assert len(errors_of(broken)) == 3


def test_every_reference_resolves_inside_the_document(document: dict[str, Any]) -> None:
    found = list(references(document))

    assert "#/components/schemas/ReserveRequest" in found
    for reference in found:
        resolve(document, reference)


def test_operations_use_messages_of_their_own_channel(document: dict[str, Any]) -> None:
    for name, operation in document["operations"].items():
        channel = operation["channel"]["$ref"]
        assert operation["messages"], name
        for message in operation["messages"]:
            assert message["$ref"].startswith(f"{channel}/messages/"), name
        if "reply" in operation:
            reply_channel = operation["reply"]["channel"]["$ref"]
            for message in operation["reply"]["messages"]:
                assert message["$ref"].startswith(f"{reply_channel}/messages/"), name


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "yaml"])
def test_the_printed_document_reads_back_the_same(document: dict[str, Any], as_json: bool) -> None:
    import yaml

    text = render(document, as_json=as_json)

    assert "&id" not in text  # no YAML anchors: some AsyncAPI tools cannot read them
    assert yaml.safe_load(text) == orjson.loads(orjson.dumps(document))


# -- every topic, named from the settings and the catalog ---------------------------


def test_the_demo_document_names_every_topic_the_demo_uses(
    registry: FlowRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As `orchestrator demo` runs it: topics under a prefix, the inventory's from the env.
    monkeypatch.setenv("DEMO_INVENTORY_TOPIC", "demo-7.inventory.commands")
    settings = CoordinatorSettings().with_topics("demo-7")
    document = asyncapi_document(load_flows(DEMO_FLOWS), settings=settings)

    addresses = {channel["address"] for channel in document["channels"].values()}

    assert addresses == {
        "demo-7.requests",
        "demo-7.replies",
        "demo-7.results",
        "demo-7.dlq",
        "demo-7.changelog",
        "demo-7.inventory.commands",
    }
    assert document["operations"]["coordinator.receiveRequests"]["bindings"]["kafka"][
        "groupId"
    ] == {"type": "string", "enum": ["demo-7.coordinator"]}


def test_the_default_topics_and_the_adapter_topic(document: dict[str, Any]) -> None:
    settings = CoordinatorSettings()
    addresses = {name: channel["address"] for name, channel in document["channels"].items()}

    assert addresses == {
        "requests": settings.request_topic,
        "results": settings.result_topic,
        "replies": settings.reply_topic,
        "deadLetters": settings.dead_letter_topic,
        "changelog": settings.changelog_topic,
        "commands.inventory": inventory.command_topic,
    }
    assert document["channels"]["changelog"]["bindings"]["kafka"]["topicConfiguration"] == {
        "cleanup.policy": ["compact"]
    }
    assert (
        "place-order.reserve (compensation)"
        in document["channels"]["commands.inventory"]["description"]
    )


def test_coordinator_and_adapter_operations(document: dict[str, Any]) -> None:
    actions = {name: operation["action"] for name, operation in document["operations"].items()}

    assert actions == {
        "coordinator.receiveRequests": "receive",
        "coordinator.sendResults": "send",
        "coordinator.receiveReplies": "receive",
        "coordinator.sendDeadLetters": "send",
        "coordinator.sendChangelog": "send",
        "coordinator.receiveChangelog": "receive",
        "coordinator.sendCommands.inventory": "send",
        "adapter.inventory.receiveCommands": "receive",
        "adapter.inventory.sendDeadLetters": "send",
    }
    send = document["operations"]["coordinator.sendCommands.inventory"]
    assert send["reply"]["address"]["location"] == "$message.header#/ce_replytopic"
    assert {message["$ref"] for message in send["reply"]["messages"]} == {
        f"#/channels/replies/messages/reply.inventory.{name}"
        for name in ("release", "reserve", "stock_levels")
    }


def test_an_adapter_of_no_kafka_service_is_refused(registry: FlowRegistry) -> None:
    with pytest.raises(SetupError, match="serves no Kafka service of the catalog"):
        asyncapi_document(registry, settings=CoordinatorSettings(), adapters=[Service("nobody")])


# -- the schemas describe the real records -------------------------------------------


def dispatch(**changes: Any) -> DispatchCall:
    values: dict[str, Any] = {
        "request_id": "r-1",
        "flow": "place-order",
        "step": "reserve",
        "call": "reserve",
        "attempt": 1,
        "service": "inventory",
        "operation": "reserve",
        "input": {"order_id": "o-1", "items": [{"product_id": "p-1", "qty": 2}]},
        "deadline_ms": 2_000_000_000_000,
        "correlation_id": "r-1:reserve:1",
        "idempotency_key": "r-1:reserve",
    }
    values.update(changes)
    return DispatchCall(**values)


def command(action: DispatchCall) -> tuple[dict[str, str], Any]:
    record = command_record(
        action,
        topic="demo.inventory.commands",
        reply_topic="orchestrator.replies",
        reply_partition=3,
        source="urn:orchestrator:coordinator",
        now_ms=1_700_000_000_000,
    )
    return cloudevents.headers_to_dict(record.headers), orjson.loads(record.value)


def test_a_real_command_satisfies_its_typed_message(document: dict[str, Any]) -> None:
    message = "/components/messages/command.inventory.reserve"
    headers, payload = command(dispatch())

    assert validator_at(document, f"{message}/headers").is_valid(headers)
    assert validator_at(document, f"{message}/payload").is_valid(payload)
    # The typed input is enforced: a reserve without items is not a reserve command.
    _, untyped = command(dispatch(input={"order_id": "o-1"}))
    assert not validator_at(document, f"{message}/payload").is_valid(untyped)
    _, other = command(dispatch(operation="release", input={"reservation_id": "x"}))
    assert not validator_at(document, f"{message}/payload").is_valid(other)


async def test_a_real_reply_satisfies_its_typed_message(document: dict[str, Any]) -> None:
    headers, sent = command(dispatch(operation="stock_levels", input={"product_ids": ["p-1"]}))
    reply = await answer_command(
        inventory, value=orjson.dumps(sent), headers=headers, source="urn:test"
    )
    assert isinstance(reply, Reply)
    message = "/components/messages/reply.inventory.stock_levels"
    payload = orjson.loads(reply.value)

    assert validator_at(document, f"{message}/headers").is_valid(reply.headers)
    assert validator_at(document, f"{message}/payload").is_valid(payload)
    assert not validator_at(document, f"{message}/payload").is_valid(
        {**payload, "output": {"levels": "none"}}
    )
    assert validator_at(document, "/components/messages/stepReply/payload").is_valid(payload)


def test_real_requests_and_results_satisfy_their_messages(document: dict[str, Any]) -> None:
    request = "/components/messages/request.order-details/payload"
    valid = {"request_id": "r-1", "flow": "order-details", "input": {"order_id": "o-1"}}

    assert validator_at(document, request).is_valid(valid)
    assert not validator_at(document, request).is_valid({**valid, "input": {}})
    assert not validator_at(document, request).is_valid({**valid, "flow": "place-order"})

    result = {
        "schema_version": 2,
        "request_id": "r-1",
        "flow": "order-details",
        "status": "completed",
        "data": {"total": 1},
        "started_at_ms": 1,
        "finished_at_ms": 2,
    }
    record = result_record(result, topic="results", source="urn:orchestrator:coordinator")
    message = "/components/messages/result"
    assert validator_at(document, f"{message}/payload").is_valid(orjson.loads(record.value))
    assert validator_at(document, f"{message}/headers").is_valid(
        cloudevents.headers_to_dict(record.headers)
    )


def test_every_dead_letter_header_is_documented(document: dict[str, Any]) -> None:
    full = dead_letter_record(
        topic="dlq",
        key=b"r-1",
        value=b"{not json",
        headers=[("ce_id", b"r-1")],
        code="request.undecodable",
        reason="not JSON",
        origin_topic="requests",
        origin_partition=0,
        origin_offset=7,
    )
    small = dead_letter_without_value(full)
    documented = document["components"]["messages"]["deadLetter"]["headers"]["properties"]

    for record in (full, small):
        added = {name for name, _ in record.headers if name.startswith("dlq_")}
        assert added <= set(documented)
        headers = cloudevents.headers_to_dict(record.headers)
        assert validator_at(document, "/components/messages/deadLetter/headers").is_valid(headers)


def test_a_flow_input_schema_with_its_own_definitions(tmp_path: Path) -> None:
    (tmp_path / "services.yaml").write_text("services:\n  svc: {kind: kafka}\n")
    (tmp_path / "f.yaml").write_text(
        "name: f\n"
        "input_schema:\n"
        "  type: object\n"
        "  required: [item]\n"
        "  properties: {item: {$ref: '#/$defs/item'}}\n"
        "  $defs: {item: {type: string, minLength: 2}}\n"
        "steps:\n  a: {service: svc, operation: op, input: {x: input.item}}\n"
        "result: a\n"
    )
    document = asyncapi_document(load_flows(tmp_path), settings=CoordinatorSettings())
    request = validator_at(document, "/components/messages/request.f/payload")

    assert errors_of(document) == []
    assert request.is_valid({"request_id": "r", "flow": "f", "input": {"item": "ab"}})
    assert not request.is_valid({"request_id": "r", "flow": "f", "input": {"item": "a"}})
    # A Kafka service that lists no operations: the ones the flows call.
    assert list(document["channels"]["commands.svc"]["messages"]) == ["command.svc.op"]


def test_the_generator_imports_no_kafka_or_http_client() -> None:
    # The `orchestrator` package's own __init__ loads the runtime; what is pinned here is
    # that the generator's modules themselves never reach for a client.
    banned = ("aiokafka", "faststream", "httpx", "orchestrator.runtime", "handlers.worker")
    for path in (ROOT / "orchestrator" / "asyncapi").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                assert not name.startswith(banned), f"{path.name} imports {name}"
