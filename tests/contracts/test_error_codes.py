"""One registry of error codes: the README table and the code's literals agree with it."""

from __future__ import annotations

import re
from pathlib import Path

from contracts.error_codes import ERROR_CODES
from orchestrator.runtime.tracing import SPAN_ATTRIBUTES

ROOT = Path(__file__).parents[2]
CODE_LITERAL = re.compile(
    r"""["']((?:request|flow|input|step|result|compensation|orchestrator|http|operation"""
    r"""|adapter|command|reply|circuit)\.[a-z_0-9<>]+)["']"""
)
NOT_WIRE_CODES = {
    # Topic names, module names and the exception codes of load errors.
    "orchestrator.requests",
    "orchestrator.replies",
    "orchestrator.results",
    "orchestrator.dlq",
    "orchestrator.changelog",
    "orchestrator.cli",
    "orchestrator.error",
    "flow.invalid",
    "adapter.invalid",
    "input.order_id",
    # The names of the saga spans' own attributes (tracing), declared in one place.
    *SPAN_ATTRIBUTES,
    # Module names (the package's lazy public names say where each lives).
    *(f"orchestrator.{path.stem}" for path in (ROOT / "orchestrator").glob("*.py")),
    *(f"orchestrator.{path.parent.name}" for path in (ROOT / "orchestrator").glob("*/__init__.py")),
}
STATUS_CODE = re.compile(r"^http\.\d{3}$")
"""``http.404`` and the like are the registry's ``http.<status>`` and ``http.3xx``."""


def readme_codes() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("### Error codes", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([^`]+)` \|", section, flags=re.MULTILINE)


def test_readme_lists_every_registered_code_once() -> None:
    listed = readme_codes()

    assert len(listed) == len(set(listed))
    assert set(listed) == set(ERROR_CODES)


def test_every_code_the_source_emits_is_registered() -> None:
    sources = [
        path
        for package in ("orchestrator", "handlers", "contracts")
        for path in (ROOT / package).rglob("*.py")
        if "demo" not in path.parts
    ]
    emitted = {
        code for path in sources for code in CODE_LITERAL.findall(path.read_text())
    } - NOT_WIRE_CODES
    emitted = {code for code in emitted if not STATUS_CODE.match(code)}

    assert emitted, "the scan found no code at all: the pattern is broken"
    assert emitted <= set(ERROR_CODES), sorted(emitted - set(ERROR_CODES))
