"""Where ``orchestrator send`` takes its input from, and the sentences when it cannot."""

from __future__ import annotations

import argparse
import io
import re
from pathlib import Path

import pytest

from orchestrator.cli import _read_input
from orchestrator.errors import SetupError


def arguments(input_text: str | None = None, input_file: Path | None = None) -> argparse.Namespace:
    return argparse.Namespace(input=input_text, input_file=input_file)


def test_the_argument_is_the_json_text() -> None:
    assert _read_input(arguments('{"a": 1}')) == ('{"a": 1}', "")


def test_at_path_and_input_file_read_the_file(tmp_path: Path) -> None:
    path = tmp_path / "in.json"
    path.write_bytes(b'{"a": 2}')

    assert _read_input(arguments(f"@{path}")) == (b'{"a": 2}', f" in {path}")
    assert _read_input(arguments(input_file=path)) == (b'{"a": 2}', f" in {path}")


def test_a_dash_reads_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(b'{"a": 3}'))
    monkeypatch.setattr("sys.stdin", stdin)

    assert _read_input(arguments("-")) == (b'{"a": 3}', " on stdin")


@pytest.mark.parametrize(
    ("given", "sentence"),
    [
        (arguments(), "Give the flow input: a JSON object, @PATH, - (stdin) or --input-file PATH."),
        (arguments("{}", Path("x.json")), "either as an argument or with --input-file, not both"),
        (arguments("@/no/such/file.json"), "Cannot read the input file /no/such/file.json"),
    ],
)
def test_missing_or_unreadable_input_is_one_sentence(
    given: argparse.Namespace, sentence: str
) -> None:
    with pytest.raises(SetupError, match=re.escape(sentence)):
        _read_input(given)
