"""Per-flow tokens: which caller may run which flow."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import SetupError
from orchestrator.ingress.auth import TokenTable, load_tokens, presented_token


def test_a_tokens_file_protects_the_flows_it_names(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text("order-details: [front, mobile]\n")

    table = load_tokens(str(path), flows=["order-details", "open"])

    assert table.allows("order-details", "front")
    assert table.allows("order-details", "mobile")
    assert not table.allows("order-details", "fron")
    assert not table.allows("order-details", None)
    assert table.allows("open", None)


def test_a_star_protects_every_flow(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text('{"*": ["admin"], "a": ["just-a"]}')

    table = load_tokens(str(path), flows=["a", "b"])

    assert table.allows("a", "just-a")
    assert table.allows("a", "admin")
    assert table.allows("b", "admin")
    assert not table.allows("b", "just-a")
    assert not table.allows("b", None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nope: [x]\n", "names flows that are not loaded: nope"),
        ("a: x\n", "must map flow names"),
        ("- a\n", "must map flow names"),
        ("a: [\n", "is not YAML or JSON"),
    ],
)
def test_a_bad_tokens_file_is_a_setup_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(text)

    with pytest.raises(SetupError, match=message):
        load_tokens(str(path), flows=["a"])


def test_a_missing_tokens_file_is_a_setup_error(tmp_path: Path) -> None:
    with pytest.raises(SetupError, match="Cannot read ORCH_INGRESS_TOKENS_FILE"):
        load_tokens(str(tmp_path / "absent.yaml"), flows=[])


def test_with_tokens_a_flow_not_loaded_needs_a_star_token(tmp_path: Path) -> None:
    named = tmp_path / "named.yaml"
    named.write_text("a: [just-a]\n")
    star = tmp_path / "star.yaml"
    star.write_text('{"*": ["admin"], "a": ["just-a"]}')

    only_a = load_tokens(str(named), flows=["a", "open"])
    with_star = load_tokens(str(star), flows=["a"])

    # Results of other ingresses' flows are not open just because this one lacks them.
    assert only_a.protects("elsewhere")
    assert not only_a.allows("elsewhere", None)
    assert not only_a.allows("elsewhere", "just-a")
    assert not only_a.protects("open")
    assert with_star.allows("elsewhere", "admin")
    assert not with_star.allows("elsewhere", "just-a")
    assert not load_tokens("", flows=["a"]).protects("elsewhere")


def test_no_file_means_no_tokens() -> None:
    assert load_tokens("", flows=["a"]) == TokenTable()
    assert TokenTable().allows("a", None)


@pytest.mark.parametrize(
    ("authorization", "api_key", "token"),
    [
        ("Bearer abc", None, "abc"),
        ("bearer  abc ", None, "abc"),
        ("Basic abc", None, None),
        (None, "key-1", "key-1"),
        ("Bearer ", "key-1", "key-1"),
        (None, None, None),
    ],
)
def test_the_presented_token(
    authorization: str | None, api_key: str | None, token: str | None
) -> None:
    assert presented_token(authorization, api_key) == token
