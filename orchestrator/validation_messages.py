"""Turn pydantic validation errors into sentences that name where the problem is."""

from __future__ import annotations

from pydantic import ValidationError


def describe_validation_error(error: ValidationError) -> list[str]:
    """Return one line per problem, each starting with the dotted location."""
    lines = []
    for problem in error.errors(include_url=False):
        location = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        # Keys and messages may come from hostile input: one printable line each.
        lines.append(printable(f"{location}: {problem['msg']}"))
    return lines


def printable(text: str, *, limit: int = 500) -> str:
    """``text`` on one line, non-printable characters escaped, cut at ``limit``."""
    escaped = "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)
    return escaped if len(escaped) <= limit else escaped[:limit] + "..."
