"""``orchestrator check`` on hostile flow files and catalogs: thousands of
hypothesis-made documents (mutated valid flows, random YAML/JSON trees, wrong
types, deep nesting, huge values, invalid UTF-8, bad expressions, cycles) go
through the CLI in-process, a few through a real subprocess. The command answers
0 or 1, never with a traceback, and an error is one readable ``error:`` sentence
(with its details, if any, on indented lines below it)."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from orchestrator.cli import main

FUZZ = settings(
    database=None,
    derandomize=True,
    deadline=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)

SERVICE_CATALOG: dict[str, Any] = {
    "services": {
        "shop": {
            "kind": "http",
            "base_url": "http://127.0.0.1:9",
            "operations": {
                "get": {"path": "/items/{id}"},
                "put": {"method": "POST", "path": "/items/{id}"},
            },
        }
    }
}
FLOW: dict[str, Any] = {
    "schema_version": 1,
    "name": "fuzzed",
    "input_schema": {"type": "object", "properties": {"id": {"type": "string"}}},
    "defaults": {"timeout_ms": 1000},
    "steps": {
        "a": {"service": "shop", "operation": "get", "input": {"id": "input.id"}},
        "b": {
            "service": "shop",
            "operation": "put",
            "input": {"id": "a.id"},
            "compensate": {"operation": "get", "input": {"id": "b.id"}},
        },
        "many": {
            "service": "shop",
            "operation": "get",
            "for_each": "a.items",
            "input": {"id": "item.id"},
            "output": {"id": "reply.id"},
            "optional": True,
        },
    },
    "result": {"a": "a.id", "b": "b.id", "all": "many[].id"},
}

# Expressions that are wrong in every way an operator can get them wrong.
BAD_EXPRESSIONS = [
    "",
    "a.",
    "[[[",
    "nope.id",
    "b.id",  # read by b itself: a cycle
    "many[",
    "a.items[?",
    "`not json`",
    "length(`1`, `2`, `3`)",
    "to_number(a) | sum(@)",
    "&&&",
    "input.id | input.id | input.id",
    "a.id\u0000",
    "\udcff",
    "a" * 10_000,
    "." * 5_000,
    "(" * 5_000 + "a" + ")" * 5_000,
]

DEEP = 10_000


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(BAD_EXPRESSIONS),
    st.integers(min_value=1_000, max_value=20_000).map(lambda n: "x" * n),
)
trees = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=8), children, max_size=4),
    ),
    max_leaves=12,
)


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> Any:
    """``base`` with a few nodes replaced, removed or added."""
    document: Any = copy.deepcopy(base)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        node = document
        while isinstance(node, dict | list) and node and draw(st.booleans()):
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            key = draw(st.sampled_from(keys))
            child = node[key]
            if not isinstance(child, dict | list) or not child:
                break
            node = child
        if not isinstance(node, dict | list) or not node:
            continue
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        key = draw(st.sampled_from(keys))
        action = draw(st.sampled_from(["replace", "remove", "add"]))
        if action == "remove":
            del node[key]
        elif action == "add" and isinstance(node, dict):
            node[draw(st.text(max_size=10))] = draw(trees)
        else:
            node[key] = draw(trees)
    return document


def _dump(document: Any, form: str) -> bytes:
    if form == "json":
        return json.dumps(document, default=str).encode("utf-8", "surrogatepass")
    return yaml.safe_dump(document, allow_unicode=True).encode("utf-8", "surrogatepass")


@st.composite
def file_bytes(draw: st.DrawFn, base: dict[str, Any]) -> bytes:
    """The bytes of one hostile flow file or catalog."""
    kind = draw(
        st.sampled_from(["mutated", "mutated", "mutated", "tree", "bytes", "huge", "bad-utf8"])
    )
    form = draw(st.sampled_from(["yaml", "json"]))
    if kind == "mutated":
        return _dump(draw(mutated(base)), form)
    if kind == "tree":
        return _dump(draw(trees), form)
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "huge":
        return _dump({**base, "name": "n" * draw(st.integers(1_000, 50_000))}, form)
    text = _dump(draw(mutated(base)), form)
    cut = draw(st.integers(min_value=0, max_value=len(text)))
    return text[:cut] + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80"]))


# One folder for all examples (files are overwritten): a folder per example
# costs more than the check itself.
FOLDER = Path(tempfile.mkdtemp(prefix="check-fuzz-"))


def _run_check(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _assert_clean(code: int, stdout: str, stderr: str) -> None:
    assert "Traceback" not in stdout + stderr
    assert code in (0, 1), f"exit code {code}"
    if code == 0:
        assert stderr == ""
        assert stdout.startswith("ok: flow ")
        return
    lines = stderr.splitlines()
    assert lines, "an error must say something"
    assert lines[0].startswith("error: ")
    assert len(lines[0]) > len("error: ")
    assert all(line.startswith("  ") for line in lines[1:]), "details are indented below it"
    assert all(line.isprintable() for line in lines), "every line is readable text"


@settings(FUZZ, max_examples=500)
@given(flow=file_bytes(FLOW), catalog=file_bytes(SERVICE_CATALOG), use_catalog=st.booleans())
# Deep nesting is slow to parse (PyYAML is recursive and quadratic there): a few
# explicit examples, not hundreds of generated ones.
@example(flow=b"[" * DEEP + b"]" * DEEP, catalog=b"", use_catalog=False)
@example(flow=b"{a: " * DEEP + b"1" + b"}" * DEEP, catalog=b"", use_catalog=False)
@example(flow=b"", catalog=b'{"a": ' * DEEP + b"1" + b"}" * DEEP, use_catalog=True)
def test_check_never_crashes_on_hostile_files(
    flow: bytes, catalog: bytes, use_catalog: bool
) -> None:
    folder = FOLDER
    (folder / "services.yaml").write_bytes(
        catalog if use_catalog else _dump(SERVICE_CATALOG, "yaml")
    )
    (folder / "flow.yaml").write_bytes(flow)
    _assert_clean(*_run_check(["check", str(folder)]))


@settings(FUZZ, max_examples=500)
@given(flow=mutated(FLOW), form=st.sampled_from(["yaml", "json"]))
def test_check_never_crashes_on_mutated_flows(flow: Any, form: str) -> None:
    folder = FOLDER / "mutated"
    folder.mkdir(exist_ok=True)
    (folder / "services.yaml").write_bytes(_dump(SERVICE_CATALOG, "yaml"))
    (folder / f"flow.{form}").write_bytes(_dump(flow, form))
    _assert_clean(*_run_check(["check", str(folder)]))


def test_the_unmutated_documents_pass(tmp_path: Path) -> None:
    """The fuzzing's starting point is a valid flow (so mutations test the checks)."""
    (tmp_path / "services.yaml").write_bytes(_dump(SERVICE_CATALOG, "yaml"))
    (tmp_path / "flow.yaml").write_bytes(_dump(FLOW, "yaml"))
    assert _run_check(["check", str(tmp_path)])[0] == 0


SUBPROCESS_CASES = [
    ("deep", b"[" * DEEP + b"]" * DEEP),
    ("bad-utf8", b"name: \xff\xfe\n"),
    (
        "cycle",
        _dump(
            {
                **FLOW,
                "steps": {**FLOW["steps"], "a": {**FLOW["steps"]["a"], "input": {"id": "b.id"}}},
            },
            "yaml",
        ),
    ),
    ("huge", _dump({**FLOW, "name": "n" * 200_000}, "yaml")),
]


def test_check_in_a_real_process_prints_one_sentence(tmp_path: Path) -> None:
    running = {}
    for name, content in SUBPROCESS_CASES:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "services.yaml").write_bytes(_dump(SERVICE_CATALOG, "yaml"))
        (folder / "flow.yaml").write_bytes(content)
        running[name] = subprocess.Popen(  # all at once: start-up is most of the time
            [sys.executable, "-m", "orchestrator", "check", str(folder)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    for name, process in running.items():
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 1, (name, stderr[-2000:])
        _assert_clean(process.returncode, stdout, stderr)
