"""Every ``orchestrator`` subcommand's ``--help`` ends with an example to copy."""

from __future__ import annotations

import argparse
import re

import pytest

from orchestrator.cli import _parser


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = _parser()
    (action,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_the_subcommands_include_the_ones_in_modules_of_their_own() -> None:
    assert {"run", "send", "check", "broker", "adapter", "demo", "config"} <= set(_subcommands())


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_each_subcommand_help_has_an_example(name: str) -> None:
    text = _subcommands()[name].format_help()

    heading = re.search(r"^examples?:$", text, flags=re.IGNORECASE | re.MULTILINE)
    assert heading is not None, f"`orchestrator {name} --help` shows no example:\n{text}"
    assert f"orchestrator {name}" in text[heading.end() :], text


def test_the_top_level_help_has_an_example() -> None:
    assert "\nExample:\n" in _parser().format_help()
