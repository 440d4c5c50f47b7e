"""Observability must never cost a result: metrics and tracing hooks that cannot raise.

A bug in a span processor, an exporter or a metric's label must not end a saga, a
loop or the coordinator. Every metrics hook and every tracing method is wrapped by
:func:`never_raises`: an exception is logged (with its traceback the first time
for each kind, at debug after that, so a failing exporter cannot flood the log)
and the hook returns its fallback value instead.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar, cast

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

_logged: set[str] = set()
"""Kinds of failure already logged with a traceback (once per process)."""


def report(kind: str, error: BaseException) -> None:
    """Log a failure of observability ``kind``: fully once, then at debug."""
    if kind in _logged:
        logger.debug("%s failed again: %r", kind, error)
        return
    _logged.add(kind)
    logger.warning(
        "%s failed (%r); the saga goes on without it (later failures are logged at debug)",
        kind,
        error,
        exc_info=error,
    )


def never_raises(kind: str, fallback: object = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Wrap a hook so that any exception is reported as ``kind`` and ``fallback`` returned
    (a value of the hook's return type: None, an empty list...)."""

    def wrap(hook: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(hook)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return hook(*args, **kwargs)
            except Exception as error:
                report(kind, error)
                return cast(R, fallback)

        return guarded

    return wrap
