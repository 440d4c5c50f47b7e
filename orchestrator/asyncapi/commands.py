"""The request/reply part of the document: each Kafka service's command topic, the
replies its adapter sends, and who sends and receives them.

A command names its reply topic in a header (``ce_replytopic``), so the reply's
address is that runtime expression; the channel it lands on is the reply topic.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TYPE_CHECKING, Any

from contracts import cloudevents
from orchestrator.asyncapi.objects import DocumentParts, event_message, safe

if TYPE_CHECKING:
    from handlers.sdk import Service
    from orchestrator.asyncapi.services import KafkaServiceUse

COMMAND_EXTENSIONS = (
    cloudevents.CORRELATION_ID,
    cloudevents.REPLY_TOPIC,
    cloudevents.REPLY_PARTITION,
    cloudevents.IDEMPOTENCY_KEY,
)
REPLY_ID = "`<correlation id>:reply`"


def reply_messages(
    adapters: Mapping[str, Service], payloads: Mapping[Hashable, Any]
) -> dict[str, Any]:
    """The reply topic's messages: any step reply, and one per typed SDK operation
    (the same reply, its ``output`` the operation's output type)."""
    messages: dict[str, Any] = {
        "stepReply": event_message(
            cloudevents.TYPE_STEP_REPLY,
            payloads["StepReply"],
            event_id=REPLY_ID,
            extensions=[cloudevents.CORRELATION_ID],
        )
    }
    for name, service in adapters.items():
        for operation in service.operations:
            output = {"anyOf": [payloads[name, operation, "out"], {"type": "null"}]}
            messages[f"reply.{safe(name)}.{safe(operation)}"] = event_message(
                cloudevents.TYPE_STEP_REPLY,
                {"allOf": [payloads["StepReply"], {"properties": {"output": output}}]},
                event_id=REPLY_ID,
                extensions=[cloudevents.CORRELATION_ID],
                title=f"Reply of {name}.{operation}",
            )
    return messages


def add_kafka_service(
    parts: DocumentParts,
    use: KafkaServiceUse,
    *,
    adapter: Service | None,
    payloads: Mapping[Hashable, Any],
) -> None:
    """Add ``use``'s command channel, the coordinator's sends and its adapter's receives.

    Needs the ``replies`` and ``deadLetters`` channels added before.
    """
    typed = adapter.operations if adapter is not None else {}
    names = sorted(set(use.operations) | set(typed))
    commands: dict[str, Any] = {}
    # A service that names no operation accepts any: one message for all of them.
    every: list[str | None] = [*names] or [None]
    for operation in every:
        fixed: dict[str, Any] = {"service": {"const": use.name}}
        if operation is not None:
            fixed["operation"] = {"const": operation}
        if operation in typed:
            fixed["input"] = payloads[use.name, operation, "in"]
        suffix = f".{operation}" if operation else ""
        commands[f"command.{safe(use.name)}{safe(suffix)}"] = event_message(
            cloudevents.TYPE_STEP_COMMAND,
            {"allOf": [payloads["StepCommand"], {"properties": fixed}]},
            event_id="The correlation id: `<request id>:<call>:<attempt>`.",
            extensions=COMMAND_EXTENSIONS,
            title=f"Command to {use.name}{suffix}",
        )
    channel = f"commands.{safe(use.name)}"
    callers = ", ".join(use.callers) or "no flow yet"
    parts.add_channel(
        channel,
        topic=use.command_topic,
        description=f"Step commands to the Kafka service `{use.name}` (called by {callers}).",
        messages=commands,
    )
    replies = (
        [f"reply.{safe(use.name)}.{safe(name)}" for name in names]
        if names and all(name in typed for name in names)
        else ["stepReply"]
    )
    reply = {
        "address": {
            "location": f"$message.header#/{cloudevents.REPLY_TOPIC}",
            "description": "The topic the command's ce_replytopic header names.",
        },
        "channel": {"$ref": "#/channels/replies"},
        "messages": [{"$ref": f"#/channels/replies/messages/{key}"} for key in replies],
    }
    parts.add_operation(
        f"coordinator.sendCommands.{safe(use.name)}",
        action="send",
        channel_id=channel,
        summary=f"Call an operation of {use.name}; its adapter replies.",
        reply=reply,
    )
    parts.add_operation(
        f"adapter.{safe(use.name)}.receiveCommands",
        action="receive",
        channel_id=channel,
        summary=f"Run each command and reply (the {use.name} adapter).",
        group_id=f"adapter.{use.name}",
        tag="adapter",
        reply=reply,
    )
    parts.add_operation(
        f"adapter.{safe(use.name)}.sendDeadLetters",
        action="send",
        channel_id="deadLetters",
        summary="Set aside commands that cannot be answered (no reply headers, invalid).",
        tag="adapter",
    )
