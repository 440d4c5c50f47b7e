"""``orchestrator status`` on a fresh cluster: a group coordinator that is not ready
yet is waited for (within a bound), any other Kafka error is one sentence, the
group's own error code is not thrown away; and the CLI prints one sentence for any
Kafka error that reaches it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import (
    CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError,
    GroupAuthorizationFailedError,
    KafkaError,
    UnknownError,
)

from orchestrator import cli
from orchestrator.commands import status, status_reads
from orchestrator.commands.status_reads import committed_offsets, describe_group
from orchestrator.errors import SetupError


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(status_reads, "_RETRY_S", 0.001)


def group_response(error_code: int = 0, state: str = "Stable") -> Any:
    return SimpleNamespace(groups=[(error_code, "g", state, "consumer", "range", [])])


class StubAdmin:
    """Raises (or answers with) each of ``answers`` in turn, like find_coordinator on
    a fresh cluster; the last one is repeated."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls = 0

    def _next(self) -> Any:
        self.calls += 1
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    async def describe_consumer_groups(self, group_ids: list[str]) -> list[Any]:
        return [self._next()]

    async def list_consumer_group_offsets(self, group_id: str, *, partitions: Any) -> Any:
        return self._next()


async def test_a_coordinator_not_ready_yet_is_waited_for() -> None:
    admin = StubAdmin(
        CoordinatorNotAvailableError(),
        CoordinatorLoadInProgressError(),
        group_response(error_code=CoordinatorLoadInProgressError.errno),
        group_response(),
    )
    state, members = await describe_group(admin, "g")
    assert (state, members, admin.calls) == ("Stable", [], 4)
    offsets = StubAdmin(
        CoordinatorNotAvailableError(), {TopicPartition("t", 0): SimpleNamespace(offset=5)}
    )
    assert await committed_offsets(offsets, "g", [TopicPartition("t", 0)]) == {
        TopicPartition("t", 0): 5
    }


async def test_a_coordinator_never_ready_is_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(status_reads, "COORDINATOR_WAIT_S", 0.05)
    with pytest.raises(SetupError, match=r"still not ready .* try again shortly\."):
        await describe_group(StubAdmin(CoordinatorNotAvailableError()), "g")


@pytest.mark.parametrize(
    "answer",
    [UnknownError("boom"), group_response(error_code=GroupAuthorizationFailedError.errno)],
)
async def test_other_kafka_errors_are_one_sentence(answer: Any) -> None:
    with pytest.raises(SetupError, match=r"^Kafka refused to give the members of group g: "):
        await describe_group(StubAdmin(answer), "g")


def test_the_cli_prints_one_sentence_for_any_kafka_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def fails(*_: Any, **__: Any) -> Any:
        raise KafkaError("the broker said no")

    monkeypatch.setattr(status, "collect_status", fails)
    assert cli.main(["status"]) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert err == "error: Kafka answered with an error: KafkaError: the broker said no.\n"
