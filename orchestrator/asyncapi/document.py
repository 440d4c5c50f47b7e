"""Assemble the AsyncAPI 3.0 document: the coordinator's own topics, then each
Kafka service's (see :mod:`orchestrator.asyncapi.commands`)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from contracts import cloudevents
from contracts.base import SCHEMA_VERSION
from orchestrator.asyncapi.commands import add_kafka_service, reply_messages
from orchestrator.asyncapi.objects import (
    KAFKA_BINDING,
    DocumentParts,
    event_message,
    kafka_servers,
    safe,
)
from orchestrator.asyncapi.schemas import dead_letter_headers, embedded_schema, render_payloads
from orchestrator.asyncapi.services import kafka_services_used, match_adapters

if TYPE_CHECKING:
    from handlers.sdk import Service
    from orchestrator.flow_files import FlowRegistry
    from orchestrator.settings import CoordinatorSettings

ASYNCAPI_VERSION = "3.0.0"


def asyncapi_document(
    registry: FlowRegistry,
    *,
    settings: CoordinatorSettings,
    adapters: Sequence[Service] = (),
    title: str = "Kafka orchestrator",
    version: str = "1",
) -> dict[str, Any]:
    """Describe the topics of the flows in ``registry`` as an AsyncAPI 3.0 document.

    Args:
        registry: the loaded flows and service catalog.
        settings: the effective settings (topic names, group id, bootstrap servers).
        adapters: SDK services behind Kafka services of the catalog, whose typed
            operations give the commands' input and the replies' output schemas.
        title: the document's title.
        version: the described API's version (``info.version``).

    Raises:
        SetupError: an adapter serves no Kafka service of the catalog.
    """
    services = kafka_services_used(registry)
    typed = match_adapters(services, adapters)
    payloads, schemas = render_payloads(typed)
    parts = DocumentParts(partitions=settings.partitions, schemas=schemas)
    _add_requests(parts, registry, payloads, topic=settings.request_topic)
    _add_coordinator_topics(parts, settings, payloads, typed)
    for use in services:
        add_kafka_service(parts, use, adapter=typed.get(use.name), payloads=payloads)
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": title,
            "version": version,
            "description": _description(registry, settings),
        },
        "defaultContentType": cloudevents.CONTENT_TYPE_JSON,
        "servers": kafka_servers(settings.bootstrap_servers),
        "channels": parts.channels,
        "operations": parts.operations,
        "components": {"schemas": dict(sorted(parts.schemas.items())), "messages": parts.messages},
    }


def _add_requests(
    parts: DocumentParts,
    registry: FlowRegistry,
    payloads: Mapping[Hashable, Any],
    *,
    topic: str,
) -> None:
    """Requests, one message per flow: its name, and its ``input_schema`` for the input."""
    messages: dict[str, Any] = {}
    for name, flow in sorted(registry.flows.items()):
        component = f"flow.{safe(name)}.input"
        parts.schemas[component] = embedded_schema(
            flow.definition.input_schema, component=component
        )
        fixed = {"flow": {"const": name}, "input": {"$ref": f"#/components/schemas/{component}"}}
        messages[f"request.{safe(name)}"] = {
            **event_message(
                cloudevents.TYPE_REQUEST,
                {"allOf": [payloads["RequestEvent"], {"properties": fixed}]},
                event_id="Chosen by the client; unique per request.",
                title=f"Run {name}",
            ),
            "summary": flow.definition.description or f"A request to run the flow {name}.",
        }
    parts.add_channel(
        "requests",
        topic=topic,
        description="Request events: a client asks for one run of a flow. The request id "
        "is the idempotency key of the whole run.",
        messages=messages,
    )


def _add_coordinator_topics(
    parts: DocumentParts,
    settings: CoordinatorSettings,
    payloads: Mapping[Hashable, Any],
    adapters: Mapping[str, Service],
) -> None:
    """Results, replies, dead letters and the changelog, and what the coordinator
    does on them (requests are added before)."""
    parts.add_channel(
        "results",
        topic=settings.result_topic,
        description="Result events: the one composed result of each request (completed, "
        "failed or compensation_failed), with a deterministic ce_id so consumers can drop "
        "duplicates.",
        messages={
            "result": event_message(
                cloudevents.TYPE_RESULT, payloads["ResultEvent"], event_id="`<request id>:result`"
            )
        },
    )
    parts.add_channel(
        "replies",
        topic=settings.reply_topic,
        description="Step replies from remote adapters, each published to the partition its "
        "command's ce_replypartition names (the one the saga's owner reads).",
        messages=reply_messages(adapters, payloads),
    )
    parts.add_channel(
        "deadLetters",
        topic=settings.dead_letter_topic,
        description="Records that could not be processed (undecodable requests, invalid "
        "replies, commands an adapter cannot answer), kept with their original bytes and "
        "headers.",
        messages={
            "deadLetter": {
                "title": "Dead letter",
                "contentType": "application/octet-stream",
                "headers": dead_letter_headers(),
                "payload": {"description": "The original record's value, byte for byte."},
            }
        },
    )
    parts.add_channel(
        "changelog",
        topic=settings.changelog_topic,
        description="The saga state log: compacted, co-partitioned with the request topic, "
        "keyed `s:<request id>`, `e:<request id>/<n>`, `f:<fingerprint>` or "
        "`c:<i>/<n>:<key>`. Internal to the coordinator, not a public contract.",
        messages={
            "changelogRecord": {
                "title": "Saga state record",
                "contentType": "application/octet-stream",
                "payload": {"description": "JSON (orjson), or one part of a chunked value."},
                "bindings": {
                    "kafka": {
                        "key": {"type": "string", "pattern": "^[sefc]:"},
                        "bindingVersion": KAFKA_BINDING,
                    }
                },
            }
        },
        compacted=True,
    )
    group = settings.group_id
    coordinator: list[tuple[str, str, str, str | None]] = [
        ("receiveRequests", "requests", "Run each request's flow as a saga.", group),
        ("sendResults", "results", "Publish one result per request.", None),
        ("receiveReplies", "replies", "Correlate adapters' replies with their calls.", group),
        (
            "sendDeadLetters",
            "deadLetters",
            "Set aside undecodable requests, invalid replies.",
            None,
        ),
        ("sendChangelog", "changelog", "Record every saga's state changes.", None),
        ("receiveChangelog", "changelog", "Restore the sagas of assigned partitions.", None),
    ]
    for name, channel, summary, group_id in coordinator:
        parts.add_operation(
            f"coordinator.{name}",
            action="receive" if name.startswith("receive") else "send",
            channel_id=channel,
            summary=summary,
            group_id=group_id,
        )


def _description(registry: FlowRegistry, settings: CoordinatorSettings) -> str:
    flows = "\n".join(
        f"- `{name}` (version {flow.version}): {flow.definition.description or 'no description'}"
        for name, flow in sorted(registry.flows.items())
    )
    return (
        "The topics of an event-driven API orchestrator over Apache Kafka, generated from "
        f"the flows and the service catalog {registry.catalog.source}.\n\n"
        f"Flows:\n{flows}\n\n"
        "Every record's key is the request id. Events are CloudEvents 1.0 in Kafka binary "
        f"mode with JSON payloads (wire format version {SCHEMA_VERSION}; results at 2). "
        f"The coordinator's consumer group is `{settings.group_id}`; HTTP and in-process "
        "services are called without a Kafka hop and have no topic."
    )
