"""The remote worker honours a command's deadline: late commands are not run,
and a running operation is cut off when the deadline passes."""

from __future__ import annotations

import asyncio

import orjson
from pydantic import BaseModel

from contracts import cloudevents
from handlers.context import CallContext
from handlers.sdk import Service
from handlers.worker import Reply, answer_command

NOW_MS = 1_000_000


class Query(BaseModel):
    id: str


def command(*, deadline_ms: int, operation: str) -> bytes:
    return orjson.dumps(
        {
            "schema_version": 1,
            "request_id": "r-1",
            "flow": "f",
            "step": "s",
            "call": "s",
            "attempt": 1,
            "service": "svc",
            "operation": operation,
            "input": {"id": "a"},
            "deadline_ms": deadline_ms,
            "correlation_id": "r-1:s:1",
            "idempotency_key": "r-1:s",
        }
    )


HEADERS = {cloudevents.REPLY_TOPIC: "replies", cloudevents.REPLY_PARTITION: "0"}


def service_with_calls() -> tuple[Service, list[str]]:
    service = Service("svc")
    calls: list[str] = []

    @service.operation("fast")
    async def fast(query: Query) -> str:
        calls.append(query.id)
        return "done"

    @service.operation("slow")
    async def slow(query: Query) -> str:
        calls.append(query.id)
        await asyncio.sleep(30)
        return "too late"

    @service.operation("budget")
    async def budget(query: Query, ctx: CallContext) -> int:
        calls.append(query.id)
        return ctx.deadline_ms - NOW_MS  # what is left of the call's time

    return service, calls


async def answer(service: Service, value: bytes, *, now_ms: int) -> dict[str, object]:
    reply = await answer_command(
        service, value=value, headers=HEADERS, source="urn:test", now_ms=lambda: now_ms
    )
    assert isinstance(reply, Reply)
    payload: dict[str, object] = orjson.loads(reply.value)
    return payload


async def test_a_command_past_its_deadline_is_not_run() -> None:
    service, calls = service_with_calls()

    payload = await answer(
        service, command(deadline_ms=NOW_MS - 250, operation="fast"), now_ms=NOW_MS
    )

    assert calls == []
    assert payload["status"] == "technical_error"
    assert payload["error"] == {
        "code": "command.expired",
        "message": "the command arrived 250 ms after its deadline; it was not run",
    }


async def test_a_command_in_time_runs() -> None:
    service, calls = service_with_calls()

    payload = await answer(
        service, command(deadline_ms=NOW_MS + 5_000, operation="fast"), now_ms=NOW_MS
    )

    assert calls == ["a"]
    assert (payload["status"], payload["output"]) == ("ok", "done")


async def test_an_operation_running_past_the_deadline_is_cut_off() -> None:
    service, calls = service_with_calls()

    payload = await answer(
        service, command(deadline_ms=NOW_MS + 100, operation="slow"), now_ms=NOW_MS
    )

    assert calls == ["a"]
    assert payload["status"] == "technical_error"
    assert isinstance(payload["error"], dict)
    assert payload["error"]["code"] == "adapter.timeout"


async def test_an_operation_sees_the_commands_deadline_in_its_context() -> None:
    service, calls = service_with_calls()

    payload = await answer(
        service, command(deadline_ms=NOW_MS + 4_321, operation="budget"), now_ms=NOW_MS
    )

    assert calls == ["a"]
    assert (payload["status"], payload["output"]) == ("ok", 4_321)


async def test_a_late_command_does_not_reach_a_context_operation() -> None:
    service, calls = service_with_calls()

    payload = await answer(
        service, command(deadline_ms=NOW_MS - 1, operation="budget"), now_ms=NOW_MS
    )

    assert calls == []
    assert isinstance(payload["error"], dict)
    assert payload["error"]["code"] == "command.expired"
