"""AsyncAPI 3.0 objects as the orchestrator's document uses them: Kafka channels whose
messages live in ``components/messages``, operations over them, CloudEvents messages."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from contracts import cloudevents
from orchestrator.asyncapi.schemas import cloudevents_headers

KAFKA_BINDING = "0.5.0"
"""The version of the AsyncAPI Kafka bindings used."""
REQUEST_ID_KEY = {
    "type": "string",
    "description": "The request id: every record of one request shares a partition.",
}
_UNSAFE = re.compile(r"[^\w.-]")


def safe(name: str) -> str:
    """``name`` made fit for a component key (letters, digits, '.', '-', '_')."""
    return _UNSAFE.sub("_", name)


def event_message(
    event_type: str,
    payload: Any,
    *,
    event_id: str,
    extensions: Sequence[str] = (),
    title: str | None = None,
) -> dict[str, Any]:
    """A message that is a CloudEvent of ``event_type`` keyed by the request id.

    Args:
        event_type: its ``ce_type``.
        payload: the payload schema.
        event_id: how its ``ce_id`` is formed.
        extensions: the orchestrator's extension headers it carries.
        title: a human-friendly title (default: the event type).
    """
    message: dict[str, Any] = {
        "title": title or event_type,
        "headers": cloudevents_headers(event_type, event_id=event_id, extensions=extensions),
        "payload": payload,
        "bindings": {"kafka": {"key": REQUEST_ID_KEY, "bindingVersion": KAFKA_BINDING}},
    }
    if cloudevents.CORRELATION_ID in extensions:
        message["correlationId"] = {
            "location": f"$message.header#/{cloudevents.CORRELATION_ID}",
            "description": "Pairs a reply with its command.",
        }
    return message


@dataclass(slots=True)
class DocumentParts:
    """The channels, operations and components of a document being assembled."""

    partitions: int
    """The partitions of the topics the coordinator creates (its ``partitions`` setting)."""
    channels: dict[str, Any] = field(default_factory=dict)
    operations: dict[str, Any] = field(default_factory=dict)
    messages: dict[str, Any] = field(default_factory=dict)
    schemas: dict[str, Any] = field(default_factory=dict)

    def add_channel(
        self,
        channel_id: str,
        *,
        topic: str,
        description: str,
        messages: dict[str, Any],
        compacted: bool = False,
    ) -> None:
        """Add a topic's channel; its messages go to ``components/messages``."""
        for key, message in messages.items():
            self.messages[key] = {"name": key, **message}
        binding: dict[str, Any] = {
            "topic": topic,
            "partitions": self.partitions,
            "bindingVersion": KAFKA_BINDING,
        }
        if compacted:
            binding["topicConfiguration"] = {"cleanup.policy": ["compact"]}
        self.channels[channel_id] = {
            "address": topic,
            "description": description,
            "messages": {key: {"$ref": f"#/components/messages/{key}"} for key in messages},
            "bindings": {"kafka": binding},
        }

    def add_operation(
        self,
        operation_id: str,
        *,
        action: Literal["send", "receive"],
        channel_id: str,
        summary: str,
        group_id: str | None = None,
        tag: str = "coordinator",
        reply: dict[str, Any] | None = None,
    ) -> None:
        """Add what one application does on a channel, with every message of it.

        Args:
            operation_id: its key in ``operations``.
            action: ``send`` or ``receive``, from the application's point of view.
            channel_id: the channel, added before.
            summary: what it is for.
            group_id: the consumer group it receives in.
            tag: the application (``coordinator`` or ``adapter``).
            reply: an Operation Reply Object, for a request/reply.
        """
        operation: dict[str, Any] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "summary": summary,
            "messages": [
                {"$ref": f"#/channels/{channel_id}/messages/{key}"}
                for key in self.channels[channel_id]["messages"]
            ],
            "tags": [{"name": tag}],
        }
        if group_id is not None:
            operation["bindings"] = {
                "kafka": {
                    "groupId": {"type": "string", "enum": [group_id]},
                    "bindingVersion": KAFKA_BINDING,
                }
            }
        if reply is not None:
            operation["reply"] = reply
        self.operations[operation_id] = operation


def kafka_servers(bootstrap_servers: str) -> dict[str, Any]:
    """One server per bootstrap server: ``kafka``, or ``kafka-1``, ``kafka-2``..."""
    hosts = [host.strip() for host in bootstrap_servers.split(",") if host.strip()]
    return {
        f"kafka{'' if len(hosts) == 1 else f'-{number}'}": {
            "host": host,
            "protocol": "kafka",
            "description": "A bootstrap server (KAFKA_BOOTSTRAP_SERVERS).",
        }
        for number, host in enumerate(hosts, start=1)
    }
