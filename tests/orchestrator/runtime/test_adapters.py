"""In-process SDK adapters as the coordinator calls them: bounded, never raising."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel

from handlers.sdk import Service
from orchestrator.runtime.adapters import SdkServiceAdapter


class Query(BaseModel):
    id: str


def service() -> Service:
    svc = Service("svc")

    @svc.operation("hang")
    async def hang(query: Query) -> str:
        await asyncio.sleep(30)
        return "never"

    @svc.operation("lies")
    async def lies(query: Query) -> int:
        return object()  # type: ignore[return-value]  # not what the annotation promises

    return svc


async def test_an_operation_past_its_timeout_is_a_technical_error() -> None:
    outcome = await SdkServiceAdapter(service()).call(
        "hang", {"id": "a"}, idempotency_key="r:s", timeout_s=0.05
    )

    assert (outcome.status, outcome.error_code) == ("technical_error", "adapter.timeout")


async def test_an_output_the_return_type_cannot_serialise_is_a_technical_error() -> None:
    outcome = await SdkServiceAdapter(service()).call(
        "lies", {"id": "a"}, idempotency_key="r:s", timeout_s=5
    )

    assert (outcome.status, outcome.error_code) == ("technical_error", "adapter.invalid_output")
    assert "lies returned a value its return type cannot serialise" in outcome.error_message
