"""The adapter package's error tree.

::

    HandlerError
     ├── AdapterSetupError (also ValueError)   an adapter is declared wrongly: fix the code
     └── BusinessError                         raised by an adapter: a definite no from the service
"""

from __future__ import annotations

from typing import ClassVar


class HandlerError(Exception):
    """Base class of the errors of :mod:`handlers`."""

    code: ClassVar[str] = "handler.error"
    retriable: ClassVar[bool] = False


class AdapterSetupError(HandlerError, ValueError):
    """An adapter or service is declared wrongly; the message says what to change."""

    code = "adapter.invalid"


class BusinessError(HandlerError):
    """Raise from an adapter function for a definite no (not found, rejected).

    The request fails with this error's ``code`` (or, for an optional step, the
    call yields null); a business error is never retried.
    """

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.code = code  # type: ignore[misc]  # per-instance code, the adapter's own
        self.message = message or code
