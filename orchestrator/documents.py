"""Read a YAML or JSON document (a flow file, a service catalog) from disk.

Whatever the file holds (bytes that are not UTF-8, 10,000 nested brackets, a
syntax error with control characters in it), reading it either returns the
parsed data or raises :class:`UnreadableDocument` with one printable line; the
callers turn that into their own load error naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from orchestrator.validation_messages import printable


class UnreadableDocument(ValueError):
    """The file is not UTF-8 YAML/JSON (the message is one printable line)."""


def read_document(path: Path) -> Any:
    """The parsed content of ``path``.

    Raises:
        OSError: the file cannot be read (callers say so in their own words).
        UnreadableDocument: it is not UTF-8 text, not YAML/JSON, or nests too deep.
    """
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UnreadableDocument(
            f"it is not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start})"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise UnreadableDocument(describe_yaml_error(error)) from None
    except RecursionError:
        # PyYAML parses nested collections recursively.
        raise UnreadableDocument("it nests collections too deep to read") from None


def describe_yaml_error(error: yaml.YAMLError) -> str:
    """One printable line: what is wrong and where (PyYAML's own text spans
    several lines and quotes the offending line, control characters and all)."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        problem = error.problem or "syntax error"
        text = f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    else:
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return printable(text)
