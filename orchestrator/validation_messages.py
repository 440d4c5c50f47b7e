"""Turn pydantic validation errors into sentences that name where the problem is."""

from __future__ import annotations

from pydantic import ValidationError


def describe_validation_error(error: ValidationError) -> list[str]:
    """Return one line per problem, each starting with the dotted location."""
    lines = []
    for problem in error.errors(include_url=False):
        location = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        lines.append(f"{location}: {problem['msg']}")
    return lines
