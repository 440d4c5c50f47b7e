"""Checks over a whole flow: its step order (and cycles), and warnings.

Warnings do not stop a flow from loading; ``orchestrator check`` prints them:

- a step whose output nobody reads (neither another step, nor a compensation,
  nor the result), unless it declares side effects with ``compensate`` or takes
  part in an ``after`` ordering: probably a leftover;
- a step that reads another step which may be null (it has a ``when``, or fails
  to a null default) while it has no fallback of its own (``when``, ``default``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from contracts.flow import FlowDefinition
    from orchestrator.flow import CompiledMapping, CompiledStep


def topological_order(graph: Mapping[str, frozenset[str]], problems: list[str]) -> list[str]:
    """Order step names so each comes after its dependencies; report cycles in ``problems``."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> Iterator[str]:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = [*path[path.index(name) :], name]
            yield " -> ".join(cycle)
            return
        state[name] = "visiting"
        for dependency in sorted(graph[name] & graph.keys()):
            yield from visit(dependency, [*path, name])
        state[name] = "done"
        order.append(name)

    for name in graph:
        for cycle in visit(name, []):
            problems.append(
                f"steps form a cycle: {cycle}; break it by removing a read or an 'after'"
            )
            return []
    return order


def flow_warnings(
    definition: FlowDefinition, steps: Mapping[str, CompiledStep], result: CompiledMapping
) -> Iterator[str]:
    """Yield a sentence for each suspicious (but valid) part of the flow."""
    ordered_by_others = {other for step in definition.steps.values() for other in step.after}
    used = set(result.reads)
    for step in steps.values():
        used |= step.depends_on
        if step.compensation is not None:
            used |= step.compensation.input.reads - {step.name}
    for name, step in steps.items():
        declared = definition.steps[name]
        if (
            name not in used
            and step.compensation is None
            and not declared.after
            and name not in ordered_by_others
        ):
            yield (
                f"step '{name}': nobody reads its output (no step, compensation or the "
                "result); read it, remove the step, or declare its side effect with "
                "`compensate` or `after`"
            )
    for name, step in steps.items():
        if step.when is None and not (step.optional and step.default is None):
            continue
        why = "its `when` can skip it" if step.when is not None else "it fails to null"
        for reader in steps.values():
            data_reads = reader.depends_on - set(definition.steps[reader.name].after)
            if name in data_reads and reader.when is None and not reader.optional:
                yield (
                    f"step '{reader.name}' reads '{name}', which can be null ({why}), and has "
                    f"no fallback; give '{reader.name}' a `when` that checks it or a `default`"
                )
