"""The schemas an AsyncAPI document of the orchestrator embeds.

Payload schemas are rendered by pydantic from the contract models and from the
typed input and output of SDK operations. Header schemas come from
:mod:`contracts.cloudevents`. Every reference points into the document's
``components/schemas``, since a payload schema cannot carry ``$defs`` of its own.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import TypeAdapter

from contracts import cloudevents
from contracts.events import RequestEvent, ResultEvent, StepCommand, StepReply

if TYPE_CHECKING:
    from handlers.sdk import Service

COMPONENT_SCHEMAS = "#/components/schemas/"
EVENT_MODELS = (RequestEvent, StepCommand, StepReply, ResultEvent)

SchemaMode = Literal["validation", "serialization"]


def render_payloads(
    adapters: Mapping[str, Service],
) -> tuple[dict[Hashable, Any], dict[str, Any]]:
    """The events' schemas and the typed operations' of ``adapters`` (by service name).

    Returns:
        The schema of each event by model name (``"StepReply"``), of each
        operation's input by ``(service, operation, "in")`` and output by
        ``(service, operation, "out")``; and the component schemas they refer to.
    """
    inputs: list[tuple[Hashable, SchemaMode, TypeAdapter[Any]]] = [
        (model.__name__, "validation", TypeAdapter(model)) for model in EVENT_MODELS
    ]
    for name, service in adapters.items():
        for operation_name, operation in service.operations.items():
            inputs.append(((name, operation_name, "in"), "validation", operation.input_adapter))
            # What the adapter sends is what its output type serialises to.
            inputs.append(
                ((name, operation_name, "out"), "serialization", operation.output_adapter)
            )
    return render_models(inputs)


def render_models(
    inputs: Iterable[tuple[Hashable, SchemaMode, TypeAdapter[Any]]],
) -> tuple[dict[Hashable, Any], dict[str, Any]]:
    """Render types to JSON Schemas whose references point to ``components/schemas``.

    All in one pass, so that two models of the same name get distinct names.

    Returns:
        Each input key's schema (a ``$ref`` for a model, inline otherwise), and
        the component schemas the references point to.
    """
    by_key, definitions = TypeAdapter.json_schemas(
        list(inputs), ref_template=COMPONENT_SCHEMAS + "{model}"
    )
    schemas = {key: _asyncapi_compatible(schema) for (key, _mode), schema in by_key.items()}
    components = {
        name: _asyncapi_compatible(schema) for name, schema in definitions.get("$defs", {}).items()
    }
    return schemas, components


def _asyncapi_compatible(schema: Any) -> Any:
    """``schema`` with pydantic's OpenAPI-style discriminator objects made AsyncAPI's.

    An AsyncAPI Schema Object's ``discriminator`` is the property name alone; the
    ``oneOf`` beside it already lists the variants.
    """
    if isinstance(schema, list):
        return [_asyncapi_compatible(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {key: _asyncapi_compatible(value) for key, value in schema.items()}
    discriminator = converted.get("discriminator")
    if isinstance(discriminator, dict) and "propertyName" in discriminator:
        converted["discriminator"] = discriminator["propertyName"]
    return converted


def embedded_schema(schema: dict[str, Any], *, component: str) -> dict[str, Any]:
    """A user's JSON Schema (a flow's ``input_schema``) made fit to live at
    ``components/schemas/<component>``: its local references (``#/$defs/...``)
    are rewritten to point inside it there."""
    prefix = COMPONENT_SCHEMAS + component.replace("~", "~0").replace("/", "~1")

    def rewrite(node: Any) -> Any:
        if isinstance(node, list):
            return [rewrite(item) for item in node]
        if not isinstance(node, dict):
            return node
        rewritten = {key: rewrite(value) for key, value in node.items()}
        reference = rewritten.get("$ref")
        if isinstance(reference, str) and reference.startswith("#"):
            rewritten["$ref"] = prefix + reference[1:]
        return rewritten

    result: dict[str, Any] = rewrite(copy.deepcopy(schema))
    return result


_EXTENSIONS: dict[str, str] = {
    cloudevents.CORRELATION_ID: "`<request id>:<call>:<attempt>`: pairs a reply with its command.",
    cloudevents.REPLY_TOPIC: "The topic the reply must be published to.",
    cloudevents.REPLY_PARTITION: "The partition the reply must be published to "
    "(the one the saga's owner reads), in decimal.",
    cloudevents.IDEMPOTENCY_KEY: "`<request id>:<call>`: the same for every attempt of a call; "
    "pass it to the downstream API.",
}


def cloudevents_headers(
    event_type: str, *, event_id: str, extensions: Iterable[str] = ()
) -> dict[str, Any]:
    """The Kafka headers of a binary-mode CloudEvent of ``event_type``.

    Args:
        event_type: the ``ce_type``.
        event_id: how the ``ce_id`` is formed, for its description.
        extensions: the orchestrator's extension headers the event carries.
    """
    extensions = list(extensions)
    properties: dict[str, Any] = {
        cloudevents.ID: {"type": "string", "minLength": 1, "description": event_id},
        cloudevents.TYPE: {"type": "string", "const": event_type},
        cloudevents.SOURCE: {
            "type": "string",
            "minLength": 1,
            "description": "URI reference of the producer, e.g. urn:orchestrator:coordinator.",
        },
        cloudevents.SPECVERSION: {"type": "string", "const": cloudevents.SPEC_VERSION},
        cloudevents.TIME: {
            "type": "string",
            "format": "date-time",
            "description": "RFC 3339 UTC time the event was produced.",
        },
        cloudevents.CONTENT_TYPE: {"type": "string", "const": cloudevents.CONTENT_TYPE_JSON},
    }
    for name in extensions:
        properties[name] = {"type": "string", "minLength": 1, "description": _EXTENSIONS[name]}
        if name == cloudevents.REPLY_PARTITION:
            properties[name]["pattern"] = "^[0-9]+$"
    return {
        "type": "object",
        "description": "CloudEvents 1.0, Kafka binary mode: the event attributes are "
        "headers named `ce_<attribute>`, the payload is the event data.",
        "required": [*cloudevents.REQUIRED, *extensions],
        "properties": properties,
    }


DEAD_LETTER_HEADERS: dict[str, str] = {
    "dlq_code": "Stable code of why the record is here, e.g. request.undecodable.",
    "dlq_reason": "What was wrong, for a person (at most 2,000 characters).",
    "dlq_topic": "The topic the original record was read from.",
    "dlq_partition": "Its partition, in decimal.",
    "dlq_offset": "Its offset, in decimal: where the original can still be read.",
    "dlq_dropped": "Only when Kafka refused the full dead letter (too large): what of "
    "the original value and headers was left out.",
}
"""The headers a dead letter adds to the original record's (see
:mod:`orchestrator.runtime.records` and :mod:`handlers.worker`)."""


def dead_letter_headers() -> dict[str, Any]:
    """The headers of a dead letter: the original record's, and the ``dlq_*`` ones."""
    return {
        "type": "object",
        "description": "The original record's headers, kept as they were, and these.",
        "required": [name for name in DEAD_LETTER_HEADERS if name != "dlq_dropped"],
        "properties": {
            name: {"type": "string", "description": text}
            for name, text in DEAD_LETTER_HEADERS.items()
        },
        "additionalProperties": {"type": "string"},
    }
