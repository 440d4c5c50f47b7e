"""Which Kafka services a deployment uses (command topics, operations, callers), and
the SDK adapters behind them. Read from the service catalog and the flow definitions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from contracts.catalog import KafkaService, command_topic_of
from orchestrator.errors import SetupError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from handlers.sdk import Service
    from orchestrator.flow_files import FlowRegistry


@dataclass(frozen=True, slots=True)
class KafkaServiceUse:
    """One Kafka service of the catalog and what the flows call of it."""

    name: str
    command_topic: str
    """With environment references expanded and the default applied."""
    operations: tuple[str, ...]
    """The catalog's list and every operation a flow calls, sorted; empty if neither
    names one."""
    callers: tuple[str, ...]
    """``<flow>.<step>`` (``... (compensation)`` for an undo) of every call to it."""


def kafka_services_used(registry: FlowRegistry) -> list[KafkaServiceUse]:
    """Every Kafka service of ``registry``'s catalog, by name."""
    kafka = {
        name: definition
        for name, definition in registry.catalog.catalog.services.items()
        if isinstance(definition, KafkaService)
    }
    operations: dict[str, set[str]] = {name: set(kafka[name].operations) for name in kafka}
    callers: dict[str, list[str]] = {name: [] for name in kafka}
    for flow_name, flow in sorted(registry.flows.items()):
        for step_name, step in flow.definition.steps.items():
            if step.service in kafka:
                operations[step.service].add(step.operation)
                callers[step.service].append(f"{flow_name}.{step_name}")
            undo = step.compensate
            if undo is not None and (undo.service or step.service) in kafka:
                service = undo.service or step.service
                operations[service].add(undo.operation)
                callers[service].append(f"{flow_name}.{step_name} (compensation)")
    return [
        KafkaServiceUse(
            name=name,
            command_topic=command_topic_of(name, definition),
            operations=tuple(sorted(operations[name])),
            callers=tuple(callers[name]),
        )
        for name, definition in sorted(kafka.items())
    ]


def match_adapters(
    services: Sequence[KafkaServiceUse], adapters: Sequence[Service]
) -> dict[str, Service]:
    """Each adapter by the name of the catalog's Kafka service it serves (the same
    name, else the same command topic).

    Raises:
        SetupError: an adapter serves no Kafka service of the catalog.
    """
    matched: dict[str, Service] = {}
    for adapter in adapters:
        use = next((use for use in services if use.name == adapter.name), None) or next(
            (use for use in services if use.command_topic == adapter.command_topic), None
        )
        if use is None:
            known = ", ".join(use.name for use in services) or "none"
            raise SetupError(
                f"The adapter {adapter.name!r} (command topic {adapter.command_topic}) serves "
                f"no Kafka service of the catalog (its Kafka services: {known}); give the "
                "adapter of a service listed there with kind: kafka."
            )
        matched[use.name] = adapter
    return matched
