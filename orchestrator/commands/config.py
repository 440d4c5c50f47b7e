"""``orchestrator config``: the effective configuration, and the README's table of it.

Every row comes from :class:`orchestrator.settings.CoordinatorSettings` (its fields,
defaults and attribute docstrings), then the local broker's variables
(:data:`orchestrator.localkafka.config.VARIABLES`). ``--markdown`` prints the
README's configuration table; a test fails when the README's copy differs, so
after adding a setting rewrite it with
``python -m orchestrator.commands.config --update README.md``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from orchestrator.localkafka.config import VARIABLES as BROKER_VARIABLES
from orchestrator.settings import CoordinatorSettings

EXAMPLE = """\
Example:
  ORCH_PARTITIONS=12 orchestrator config
  orchestrator config --json | jq '.[] | select(.from != "default")'
"""

DEFAULT = "default"


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    """One setting as it is in effect.

    Attributes:
        variable: The environment variable that sets it.
        setting: The field of ``CoordinatorSettings``, or None for the local broker's.
        value: The value in effect.
        default: The value when the variable is not set.
        origin: ``"default"``, or the variable's name when it was set.
        description: What it does (the field's docstring).
    """

    variable: str
    setting: str | None
    value: Any
    default: Any
    origin: str
    description: str


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``orchestrator config``."""
    parser = commands.add_parser(
        "config",
        help="print the effective configuration and where each value came from",
        description="Print every setting, its value, and whether it is the default or "
        "came from an environment variable.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    shape = parser.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true", help="print a JSON list, for machines")
    shape.add_argument(
        "--markdown",
        action="store_true",
        help="print the README's configuration table (defaults, not values)",
    )
    parser.set_defaults(command=_config)


def effective_config(environ: Mapping[str, str] | None = None) -> list[ConfigEntry]:
    """Every setting with its value in effect under ``environ`` (default ``os.environ``).

    Raises:
        SetupError: A variable holds a value its setting refuses.
    """
    environ = os.environ if environ is None else environ
    settings = CoordinatorSettings.from_env(environ)
    found = CoordinatorSettings.env_values(environ)
    entries = []
    for name, field in CoordinatorSettings.model_fields.items():
        variable = CoordinatorSettings.env_name(name)
        entries.append(
            ConfigEntry(
                variable=variable,
                setting=name,
                value=getattr(settings, name),
                default=field.default,
                origin=variable if name in found else DEFAULT,
                description=_one_line(field.description or ""),
            )
        )
    for variable, default, meaning in BROKER_VARIABLES:
        raw = environ.get(variable, "").strip()
        entries.append(
            ConfigEntry(
                variable=variable,
                setting=None,
                value=raw or default,
                default=default,
                origin=variable if raw else DEFAULT,
                description=_one_line(meaning),
            )
        )
    return entries


def markdown_table() -> str:
    """The README's configuration table: variable, default, meaning."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for entry in effective_config({}):
        default = "(none)" if _text(entry.default) == "" else f"`{_text(entry.default)}`"
        meaning = entry.description.replace("|", "\\|")
        lines.append(f"| `{entry.variable}` | {default} | {meaning} |")
    return "\n".join(lines) + "\n"


def update_readme(text: str) -> str:
    """``text`` (a README) with its configuration table replaced by :func:`markdown_table`."""
    header = "| variable | default | meaning |\n"
    start = text.index(header)
    end = text.find("\n\n", start)
    end = len(text) if end == -1 else end + 1
    return text[:start] + markdown_table() + text[end:]


def _config(arguments: argparse.Namespace) -> int:
    if arguments.markdown:
        sys.stdout.write(markdown_table())
        return 0
    entries = effective_config()
    if arguments.json:
        rows = [
            {
                "variable": entry.variable,
                "setting": entry.setting,
                "value": _json_value(entry.value),
                "default": _json_value(entry.default),
                "from": entry.origin,
                "description": entry.description,
            }
            for entry in entries
        ]
        print(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return 0
    table = [("VARIABLE", "VALUE", "FROM")]
    table += [
        (
            entry.variable,
            _text(entry.value) or "(none)",
            "env" if entry.origin != DEFAULT else DEFAULT,
        )
        for entry in entries
    ]
    widths = [max(len(row[column]) for row in table) for column in range(2)]
    for variable, value, origin in table:
        print(f"{variable:<{widths[0]}}  {value:<{widths[1]}}  {origin}")
    return 0


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _json_value(value: Any) -> Any:
    # Secrets (pydantic's SecretStr) and paths print as their masked or plain text.
    return value if isinstance(value, bool | int | float | str) or value is None else str(value)


def _one_line(docstring: str) -> str:
    """A docstring as one Markdown line: reST literals become code spans."""
    text = " ".join(docstring.split())
    return re.sub(r"``([^`]+)``", r"`\1`", text)


def _main(argv: list[str]) -> int:
    if argv == ["--markdown"]:
        sys.stdout.write(markdown_table())
        return 0
    if len(argv) == 2 and argv[0] == "--update":
        path = Path(argv[1])
        path.write_text(update_readme(path.read_text()))
        return 0
    print(
        "usage: python -m orchestrator.commands.config --markdown | --update README.md",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
