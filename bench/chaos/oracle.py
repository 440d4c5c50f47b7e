"""The chaos run's oracle: what was sent, what the topics hold and what the downstream
services did, turned into the figures that say whether any request was lost, answered
twice, or left a reservation held or a charge standing after its saga failed.

Pure: it reads plain records (parsed result events, dead-letter headers, step
commands, side effects) and does no I/O, so it can be fed synthetic records.

Failures (a non-zero exit): a request with no result event (lost), a request with
more than one result record (duplicate), and a compensation due and not run: a
place-order whose saga did not complete but whose reservation is still held or whose
charge is still standing at the end. Everything else is reported, not judged: a
downstream call repeated with the same idempotency key is allowed (a re-issue), and
a result with another status than the scenario expects can be a legitimate effect of
the chaos (a deadline passed while the broker restarted).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MADE = frozenset({"reserved", "charged"})
"""Effect outcomes that create something a failed saga must undo."""
UNDONE = frozenset({"released", "refunded"})
"""Effect outcomes that undo it."""
SHOWN = 5
"""How many request ids the table lists per failure."""


@dataclass(frozen=True, slots=True)
class SentRequest:
    """One request the run published (at least once)."""

    request_id: str
    flow: str
    expect: str
    """The status the scenario leads to without chaos: ``completed`` or ``failed``."""
    scenario: str = ""
    published: int = 1
    """Records published with this request id (duplicates and re-sends included)."""


@dataclass(frozen=True, slots=True)
class Effect:
    """One side-effecting call a downstream service received, in the order received.

    ``outcome`` is what the service did: ``reserved``/``released``, ``charged``/
    ``refunded`` and ``booked`` change state; ``repeat`` (a call with a key already
    served), ``noop`` (an undo of nothing), ``declined``, ``refused`` and
    ``unavailable`` do not. ``ref`` names what was made or undone (reservation id,
    charge id, tracking number).
    """

    service: str
    operation: str
    key: str
    """The idempotency key: ``<request id>:<call>`` or ``<request id>:<step>:compensate``."""
    outcome: str
    ref: str = ""

    @property
    def request_id(self) -> str:
        """The request the call was made for (request ids hold no ':')."""
        return self.key.split(":", 1)[0]


@dataclass(frozen=True, slots=True)
class Verdict:
    """The oracle's figures."""

    requests: int
    published: int
    result_records: int
    statuses: dict[str, int]
    lost: tuple[str, ...]
    duplicated: tuple[str, ...]
    """Request ids with more than one result record."""
    duplicate_result_records: int
    """Result records beyond the first of each request id."""
    unknown_results: int
    unexpected_status: tuple[str, ...]
    unexpected_codes: dict[str, int]
    """The error codes of the results with another status than expected."""
    dead_letters: dict[str, int]
    commands: int
    reissued_commands: int
    """Step command records whose correlation id was published before."""
    side_effects: int
    keys: int
    keys_run_more_than_once: int
    max_executions_per_key: int
    compensations_due: int
    compensations_run: int
    missed_compensations: tuple[str, ...]
    """``<request id>: <service> <ref> still standing`` for each compensation due, not run."""
    undone_though_completed: tuple[str, ...]

    @property
    def failures(self) -> list[str]:
        """One line per kind of failure; empty when the run passed."""
        lines = []
        if self.lost:
            lines.append(f"{len(self.lost)} lost: {_some(self.lost)}")
        if self.duplicate_result_records:
            lines.append(
                f"{self.duplicate_result_records} duplicate result records "
                f"({len(self.duplicated)} requests): {_some(self.duplicated)}"
            )
        if self.missed_compensations:
            lines.append(
                f"{len(self.missed_compensations)} compensations due and not run: "
                f"{_some(self.missed_compensations)}"
            )
        return lines

    @property
    def ok(self) -> bool:
        """True when nothing was lost, nothing answered twice, nothing left to undo."""
        return not self.failures

    def table(self) -> str:
        """The figures as a two-column table, then the verdict."""
        rows = [
            ("requests", str(self.requests)),
            ("request records published", str(self.published)),
            ("result records", str(self.result_records)),
            ("results by status", _counts(self.statuses)),
            ("lost (no result)", str(len(self.lost))),
            ("duplicate result records", str(self.duplicate_result_records)),
            ("requests answered twice or more", str(len(self.duplicated))),
            ("results of unknown requests", str(self.unknown_results)),
            ("status other than expected", str(len(self.unexpected_status))),
            ("  their error codes", _counts(self.unexpected_codes)),
            ("dead letters", _counts(self.dead_letters)),
            ("step commands (inventory)", str(self.commands)),
            ("re-issued step commands", str(self.reissued_commands)),
            ("downstream side effects", str(self.side_effects)),
            ("idempotency keys", str(self.keys)),
            ("keys run more than once", str(self.keys_run_more_than_once)),
            ("max executions per key", str(self.max_executions_per_key)),
            ("compensations due", str(self.compensations_due)),
            ("compensations run", str(self.compensations_run)),
            ("compensations due, not run", str(len(self.missed_compensations))),
            ("undone though completed", str(len(self.undone_though_completed))),
        ]
        width = max(len(name) for name, _ in rows)
        lines = [f"  {name:<{width}}  {value}" for name, value in rows]
        if self.unexpected_status:
            lines.append(f"  (other status than expected: {_some(self.unexpected_status)})")
        if self.undone_though_completed:
            lines.append(f"  (undone though completed: {_some(self.undone_though_completed)})")
        failures = self.failures
        lines.append("VERDICT: PASS" if not failures else "VERDICT: FAIL")
        lines.extend(f"  - {line}" for line in failures)
        return "\n".join(lines)


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(counts.items())) or "0"


def _some(items: Sequence[str]) -> str:
    shown = ", ".join(items[:SHOWN])
    return shown if len(items) <= SHOWN else f"{shown}, ... ({len(items) - SHOWN} more)"


def judge(
    sent: Sequence[SentRequest],
    *,
    results: Sequence[Mapping[str, Any]],
    dead_letters: Sequence[Mapping[str, str]] = (),
    commands: Sequence[Mapping[str, Any]] = (),
    effects: Sequence[Effect] = (),
) -> Verdict:
    """Judge a run.

    Args:
        sent: Every request published, once per request id.
        results: Every record of the result topic, parsed (``request_id``, ``status``).
        dead_letters: The headers of every dead-letter record (``dlq_code``).
        commands: Every step command record the coordinators published, parsed.
        effects: Every side-effecting downstream call, in the order each service
            received them (the order matters only within one service).
    """
    by_id = {request.request_id: request for request in sent}
    counts: Counter[str] = Counter()
    statuses: dict[str, set[str]] = {}
    unexpected_codes: Counter[str] = Counter()
    unknown = 0
    for result in results:
        request_id = str(result.get("request_id"))
        if request_id not in by_id:
            unknown += 1
            continue
        counts[request_id] += 1
        status = str(result.get("status"))
        statuses.setdefault(request_id, set()).add(status)
        if status != by_id[request_id].expect:
            errors = result.get("errors") or []
            unexpected_codes.update({str(error.get("code")) for error in errors} or {"-"})
    lost = tuple(rid for rid in by_id if counts[rid] == 0)
    duplicated = tuple(rid for rid, count in counts.items() if count > 1)
    status_counts = Counter(
        status for request_statuses in statuses.values() for status in request_statuses
    )
    unexpected = tuple(
        rid for rid, seen in statuses.items() if seen and seen != {by_id[rid].expect}
    )

    correlation_ids = Counter(str(command.get("correlation_id")) for command in commands)
    executions = Counter(effect.key for effect in effects)

    # The final state of everything made: True while it stands, False once undone.
    standing: dict[tuple[str, str, str], bool] = {}
    for effect in effects:
        target = (effect.request_id, effect.service, effect.ref)
        if effect.outcome in MADE:
            standing[target] = True
        elif effect.outcome in UNDONE and target in standing:
            standing[target] = False
    due = run = 0
    missed: list[str] = []
    undone_though_completed: list[str] = []
    for (request_id, service, ref), stands in standing.items():
        if "completed" in statuses.get(request_id, set()):
            if not stands:
                undone_though_completed.append(f"{request_id}: {service} {ref}")
            continue
        due += 1
        if stands:
            missed.append(f"{request_id}: {service} {ref} still standing")
        else:
            run += 1

    return Verdict(
        requests=len(by_id),
        published=sum(request.published for request in sent),
        result_records=len(results),
        statuses=dict(status_counts),
        lost=lost,
        duplicated=duplicated,
        duplicate_result_records=sum(count - 1 for count in counts.values() if count > 1),
        unknown_results=unknown,
        unexpected_status=unexpected,
        unexpected_codes=dict(unexpected_codes),
        dead_letters=dict(Counter(letter.get("dlq_code", "?") for letter in dead_letters)),
        commands=len(commands),
        reissued_commands=sum(count - 1 for count in correlation_ids.values()),
        side_effects=len(effects),
        keys=len(executions),
        keys_run_more_than_once=sum(1 for count in executions.values() if count > 1),
        max_executions_per_key=max(executions.values(), default=0),
        compensations_due=due,
        compensations_run=run,
        missed_compensations=tuple(missed),
        undone_though_completed=tuple(undone_though_completed),
    )
