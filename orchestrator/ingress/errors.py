"""What the ingress answers when it refuses a request itself, and the error tree.

These codes are the ingress's own: the request never reached Kafka. Codes of a
result (``input.invalid``, ``step.timeout``...) are in :mod:`contracts.error_codes`;
two of those the ingress also answers itself: ``flow.unknown`` (it knows the
flows it loaded) and ``input.invalid`` for a body that is not a JSON object.

::

    IngressRefusal                       the ingress answers without publishing
     (code, HTTP status, message)
"""

from __future__ import annotations

from http import HTTPStatus

INGRESS_CODES: dict[str, tuple[int, str]] = {
    "ingress.invalid_idempotency_key": (
        HTTPStatus.BAD_REQUEST,
        "the Idempotency-Key header is empty, too long or has characters outside "
        "A-Z a-z 0-9 . _ : ~ -",
    ),
    "ingress.invalid_json": (HTTPStatus.BAD_REQUEST, "the body is not JSON"),
    "ingress.unauthorized": (
        HTTPStatus.UNAUTHORIZED,
        "the flow asks for a token and none, or a wrong one, was given",
    ),
    "ingress.body_too_large": (
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        "the body is larger than ORCH_INGRESS_MAX_BODY_BYTES, or the request event "
        "larger than Kafka accepts",
    ),
    "ingress.idempotency_key_reused": (
        HTTPStatus.CONFLICT,
        "the Idempotency-Key (request id) was already used for another flow",
    ),
    "ingress.result_not_found": (
        HTTPStatus.NOT_FOUND,
        "neither a result nor the request itself within ORCH_INGRESS_LOOKUP_WINDOW_MS "
        "(or the look-up timed out)",
    ),
    "ingress.kafka_unavailable": (
        HTTPStatus.SERVICE_UNAVAILABLE,
        "the request could not be published to Kafka, or the result reader stopped",
    ),
    "ingress.too_many_waiters": (
        HTTPStatus.SERVICE_UNAVAILABLE,
        "ORCH_INGRESS_MAX_WAITERS callers already wait for a result in this process",
    ),
}
"""Every code the ingress answers with on its own, with its HTTP status and meaning."""


class IngressRefusal(Exception):
    """The ingress refuses a request before (or instead of) publishing it."""

    def __init__(self, code: str, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = int(status if status is not None else INGRESS_CODES[code][0])

    @classmethod
    def of(cls, code: str, message: str) -> IngressRefusal:
        """A refusal with the HTTP status :data:`INGRESS_CODES` gives ``code``."""
        return cls(code, message)
