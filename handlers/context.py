"""What an adapter knows about the call it is answering."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CallContext:
    """One attempt of one call, as the coordinator made it.

    An SDK operation receives it when it declares a second parameter annotated
    ``CallContext``, in-process and in a remote worker alike. Pass
    ``idempotency_key`` to the downstream API: it is the same for every attempt
    and every re-run of the call, so the downstream can perform it at most once.
    """

    request_id: str
    call: str
    """``<step>``, ``<step>#<index>`` for a for_each call, ``...~undo`` for a compensation."""
    attempt: int
    idempotency_key: str
    deadline_ms: int
    """Epoch milliseconds after which the coordinator no longer waits for the answer."""
    flow: str = ""
    step: str = ""

    @classmethod
    def for_test(cls, *, request_id: str = "test-request", call: str = "step") -> CallContext:
        """A context for calling an adapter directly in a test (deadline far away)."""
        return cls(
            request_id=request_id,
            call=call,
            attempt=1,
            idempotency_key=f"{request_id}:{call}",
            deadline_ms=2**62,
        )
